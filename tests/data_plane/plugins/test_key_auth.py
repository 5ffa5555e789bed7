"""The key-auth plugin through a real node, as Kong behaves."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
)

ALICE = "7c1d2e3f-0b7d-4c5e-9d51-3f0f8f6b1a01"
GUEST = "7c1d2e3f-0b7d-4c5e-9d51-3f0f8f6b1a02"
ALICE_KEY = "7c1d2e3f-0b7d-4c5e-9d51-3f0f8f6b1b01"


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "key-auth", "config": config}],
    }


def _config(echo: EchoProcess) -> dict[str, Any]:
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    _route("default"),
                    _route("realm", realm="zoo"),
                    _route(
                        "hidden",
                        key_names=["apikey", "x_token"],
                        hide_credentials=True,
                        key_in_body=True,
                    ),
                    _route(
                        "body",
                        key_in_header=False,
                        key_in_query=False,
                        key_in_body=True,
                    ),
                    _route("open", anonymous="guest"),
                    _route("preflight", run_on_preflight=False),
                    _route("ghost", anonymous="nobody"),
                ],
            }
        ],
        "consumers": [
            {
                "id": ALICE,
                "username": "alice",
                "custom_id": "c-42",
                "keyauth_credentials": [{"id": ALICE_KEY, "key": "alice-key"}],
            },
            {
                "username": "old",
                # Created long ago with a one-second lifetime: expired.
                "keyauth_credentials": [
                    {"key": "old-key", "ttl": 1, "created_at": 1_000_000}
                ],
            },
            {"id": GUEST, "username": "guest"},
        ],
    }


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    with start_data_plane(
        tmp_path_factory.mktemp("dp"), declarative=_config(echo)
    ) as dp:
        yield dp


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def test_a_request_without_a_key_gets_401_no_api_key(client: httpx.Client) -> None:
    reply = client.get("/default")
    assert reply.status_code == 401
    assert reply.json() == {"message": "No API key found in request"}
    assert reply.headers["www-authenticate"] == "Key"


def test_an_unknown_key_gets_401_unauthorized(client: httpx.Client) -> None:
    reply = client.get("/default", headers={"apikey": "nope"})
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}
    assert reply.headers["www-authenticate"] == "Key"


def test_an_empty_key_counts_as_no_key(client: httpx.Client) -> None:
    reply = client.get("/default", params={"apikey": ""})
    assert reply.json() == {"message": "No API key found in request"}


def test_the_realm_is_named_in_the_challenge(client: httpx.Client) -> None:
    reply = client.get("/realm")
    assert reply.headers["www-authenticate"] == 'Key realm="zoo"'


def test_a_key_in_a_header_reaches_the_upstream_with_consumer_headers(
    client: httpx.Client,
) -> None:
    reply = client.get(
        "/default",
        headers={"ApiKey": "alice-key", "X-Anonymous-Consumer": "true"},
    )
    assert reply.status_code == 200
    headers = reply.json()["headers"]
    assert headers["x-consumer-id"] == ALICE
    assert headers["x-consumer-custom-id"] == "c-42"
    assert headers["x-consumer-username"] == "alice"
    assert headers["x-credential-identifier"] == ALICE_KEY
    assert "x-anonymous-consumer" not in headers
    assert headers["apikey"] == "alice-key"


def test_a_key_in_the_query_string_is_accepted_and_kept(client: httpx.Client) -> None:
    reply = client.get("/default", params={"apikey": "alice-key", "q": "1"})
    assert reply.status_code == 200
    assert reply.json()["query"] == {"apikey": "alice-key", "q": "1"}


def test_a_percent_encoded_key_is_decoded(client: httpx.Client) -> None:
    reply = client.get("/default?api%6Bey=alice%2Dkey")
    assert reply.status_code == 200


def test_a_key_given_twice_in_the_query_is_a_duplicate(client: httpx.Client) -> None:
    reply = client.get("/default?apikey=alice-key&apikey=alice-key")
    assert reply.status_code == 401
    assert reply.json() == {"message": "Duplicate API key found"}
    assert reply.headers["www-authenticate"] == "Key"


def test_a_key_header_sent_twice_is_a_duplicate(client: httpx.Client) -> None:
    reply = client.get(
        "/default", headers=[("apikey", "alice-key"), ("apikey", "alice-key")]
    )
    assert reply.json() == {"message": "Duplicate API key found"}


def test_an_expired_key_is_unauthorized(client: httpx.Client) -> None:
    reply = client.get("/default", headers={"apikey": "old-key"})
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}


def test_hide_credentials_removes_the_header(client: httpx.Client) -> None:
    reply = client.get("/hidden", headers={"apikey": "alice-key"})
    assert reply.status_code == 200
    assert "apikey" not in reply.json()["headers"]


def test_hide_credentials_removes_the_query_argument_only(
    client: httpx.Client,
) -> None:
    reply = client.get("/hidden?a=1&apikey=alice-key&b=%20x")
    assert reply.status_code == 200
    echoed = reply.json()
    assert echoed["query"] == {"a": "1", "b": " x"}
    assert echoed["url"].endswith("/?a=1&b=%20x")


def test_a_key_name_with_an_underscore_is_read_from_a_dashed_header(
    client: httpx.Client,
) -> None:
    reply = client.get("/hidden", headers={"X-Token": "alice-key"})
    assert reply.status_code == 200
    assert "x-token" not in reply.json()["headers"]


def test_a_key_in_a_form_body_is_accepted(client: httpx.Client) -> None:
    reply = client.post("/body", data={"apikey": "alice-key", "a": "1"})
    assert reply.status_code == 200
    assert reply.json()["body"] == "apikey=alice-key&a=1"


def test_a_key_in_a_json_body_is_accepted(client: httpx.Client) -> None:
    reply = client.post("/body", json={"apikey": "alice-key"})
    assert reply.status_code == 200


def test_a_key_in_a_multipart_body_is_accepted(client: httpx.Client) -> None:
    reply = client.post(
        "/body", files={"apikey": (None, "alice-key"), "f": ("f.txt", b"data")}
    )
    assert reply.status_code == 200
    assert "data" in reply.json()["body"]


def test_a_key_in_a_chunked_body_is_accepted(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"apikey=alice"
        yield b"-key"

    reply = client.post(
        "/body",
        content=pieces(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200
    assert reply.json()["body"] == "apikey=alice-key"


def test_a_body_of_another_type_holds_no_key(client: httpx.Client) -> None:
    reply = client.post(
        "/body", content=b"apikey=alice-key", headers={"Content-Type": "text/plain"}
    )
    assert reply.status_code == 401
    assert reply.json() == {"message": "No API key found in request"}


def test_a_json_array_under_the_key_name_is_a_duplicate(client: httpx.Client) -> None:
    reply = client.post("/body", json={"apikey": ["alice-key", "x"]})
    assert reply.json() == {"message": "Duplicate API key found"}


def test_hide_credentials_removes_the_key_from_a_form_body(
    client: httpx.Client,
) -> None:
    reply = client.post("/hidden", data={"a": "1", "apikey": "alice-key"})
    assert reply.status_code == 200
    echoed = reply.json()
    assert echoed["body"] == "a=1"
    assert echoed["headers"]["content-length"] == "3"


def test_hide_credentials_removes_the_key_from_a_json_body(
    client: httpx.Client,
) -> None:
    reply = client.post("/hidden", json={"apikey": "alice-key", "keep": [1, 2]})
    assert reply.status_code == 200
    assert json.loads(reply.json()["body"]) == {"keep": [1, 2]}


def test_hide_credentials_removes_the_key_from_a_multipart_body(
    client: httpx.Client,
) -> None:
    reply = client.post(
        "/hidden", files={"apikey": (None, "alice-key"), "f": ("f.txt", b"data")}
    )
    assert reply.status_code == 200
    body = reply.json()["body"]
    assert "alice-key" not in body
    assert 'name="f"' in body


def test_a_body_key_waits_for_100_continue(node: DataPlaneProcess) -> None:
    body = b"apikey=alice-key"
    head = (
        b"POST /body HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(10))
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_anonymous_lets_a_request_without_a_key_through(client: httpx.Client) -> None:
    reply = client.get("/open", headers={"X-Credential-Identifier": "forged"})
    assert reply.status_code == 200
    headers = reply.json()["headers"]
    assert headers["x-anonymous-consumer"] == "true"
    assert headers["x-consumer-id"] == GUEST
    assert headers["x-consumer-username"] == "guest"
    assert "x-credential-identifier" not in headers


def test_anonymous_lets_a_wrong_key_through_as_well(client: httpx.Client) -> None:
    reply = client.get("/open", headers={"apikey": "nope"})
    assert reply.json()["headers"]["x-consumer-username"] == "guest"


def test_anonymous_still_identifies_a_valid_key(client: httpx.Client) -> None:
    reply = client.get("/open", headers={"apikey": "alice-key"})
    assert reply.json()["headers"]["x-consumer-username"] == "alice"


def test_a_missing_anonymous_consumer_is_a_500(client: httpx.Client) -> None:
    reply = client.get("/ghost")
    assert reply.status_code == 500
    assert reply.json() == {
        "message": "anonymous consumer nobody is configured but doesn't exist"
    }


def test_preflight_requests_pass_without_a_key_when_told_to(
    client: httpx.Client,
) -> None:
    assert client.options("/preflight").status_code == 200
    assert client.get("/preflight").status_code == 401
    assert client.options("/default").status_code == 401
