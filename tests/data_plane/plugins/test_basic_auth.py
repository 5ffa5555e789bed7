"""The basic-auth plugin through a real node, as Kong behaves."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.credentials import hash_password
from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
)

ALICE = "2a7a3c6e-0b7d-4c5e-9d51-3f0f8f6b1a01"
GUEST = "2a7a3c6e-0b7d-4c5e-9d51-3f0f8f6b1a02"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _config(echo: EchoProcess, alice_password: str = "secret") -> dict[str, Any]:
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    {"name": "global", "paths": ["/global"]},
                    {
                        "name": "hidden",
                        "paths": ["/hidden"],
                        "plugins": [
                            {
                                "name": "basic-auth",
                                "config": {"hide_credentials": True, "realm": "zoo"},
                            }
                        ],
                    },
                    {
                        "name": "open",
                        "paths": ["/open"],
                        "plugins": [
                            {"name": "basic-auth", "config": {"anonymous": "guest"}}
                        ],
                    },
                ],
            }
        ],
        "consumers": [
            {
                "id": ALICE,
                "username": "alice",
                "custom_id": "c-42",
                "basicauth_credentials": [
                    {"username": "alice", "password": alice_password}
                ],
            },
            {"id": GUEST, "username": "guest"},
        ],
        "plugins": [{"name": "basic-auth"}],
    }


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    tmp: Path = tmp_path_factory.mktemp("dp")
    with start_data_plane(tmp, declarative=_config(echo)) as process:
        yield process


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def test_a_request_without_credentials_gets_401_unauthorized(
    client: httpx.Client,
) -> None:
    reply = client.get("/global")
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}
    assert reply.headers["www-authenticate"] == 'Basic realm="service"'


def test_a_wrong_password_gets_401(client: httpx.Client) -> None:
    reply = client.get("/global", headers={"Authorization": _basic("alice", "nope")})
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}


def test_an_unknown_user_gets_401(client: httpx.Client) -> None:
    reply = client.get("/global", headers={"Authorization": _basic("bob", "secret")})
    assert reply.status_code == 401


def test_a_malformed_header_gets_401(client: httpx.Client) -> None:
    reply = client.get("/global", headers={"Authorization": "Basic !!!"})
    assert reply.status_code == 401


def test_the_realm_is_configurable(client: httpx.Client) -> None:
    reply = client.get("/hidden")
    assert reply.headers["www-authenticate"] == 'Basic realm="zoo"'


def test_valid_credentials_reach_the_upstream_with_consumer_headers(
    client: httpx.Client,
) -> None:
    reply = client.get(
        "/global",
        headers={
            "Authorization": _basic("alice", "secret"),
            "X-Anonymous-Consumer": "x",
        },
    )
    assert reply.status_code == 200
    headers = reply.json()["headers"]
    assert headers["x-consumer-id"] == ALICE
    assert headers["x-consumer-custom-id"] == "c-42"
    assert headers["x-consumer-username"] == "alice"
    assert headers["x-credential-identifier"] == "alice"
    assert "x-anonymous-consumer" not in headers
    assert headers["authorization"] == _basic("alice", "secret")


def test_proxy_authorization_is_read_first(client: httpx.Client) -> None:
    reply = client.get(
        "/global",
        headers={
            "Proxy-Authorization": _basic("alice", "secret"),
            "Authorization": "Bearer something-else",
        },
    )
    assert reply.status_code == 200


def test_hide_credentials_removes_the_header_upstream(client: httpx.Client) -> None:
    reply = client.get("/hidden", headers={"Authorization": _basic("alice", "secret")})
    assert reply.status_code == 200
    assert "authorization" not in reply.json()["headers"]


def test_anonymous_lets_the_request_through_as_that_consumer(
    client: httpx.Client,
) -> None:
    reply = client.get("/open")
    assert reply.status_code == 200
    headers = reply.json()["headers"]
    assert headers["x-anonymous-consumer"] == "true"
    assert headers["x-consumer-username"] == "guest"
    assert headers["x-consumer-id"] == GUEST
    assert "x-credential-identifier" not in headers


def test_anonymous_still_identifies_valid_credentials(client: httpx.Client) -> None:
    reply = client.get("/open", headers={"Authorization": _basic("alice", "secret")})
    assert reply.json()["headers"]["x-consumer-username"] == "alice"


def test_a_changed_password_takes_effect_with_the_next_config(
    tmp_path: Path, echo: EchoProcess
) -> None:
    with start_data_plane(tmp_path, declarative=_config(echo)) as node:
        with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
            old = {"Authorization": _basic("alice", "secret")}
            assert http.get("/global", headers=old).status_code == 200
            node.reload(_config(echo, alice_password="changed"))
            assert http.get("/global", headers=old).status_code == 401
            new = {"Authorization": _basic("alice", "changed")}
            assert http.get("/global", headers=new).status_code == 200


def test_a_stored_hash_in_the_file_is_used_as_is(
    tmp_path: Path, echo: EchoProcess
) -> None:
    config = _config(echo, alice_password=hash_password("hashed-one"))
    with start_data_plane(tmp_path, declarative=config) as node:
        reply = httpx.get(
            node.proxy_url + "/global",
            headers={"Authorization": _basic("alice", "hashed-one")},
            timeout=deadline(10),
        )
    assert reply.status_code == 200
