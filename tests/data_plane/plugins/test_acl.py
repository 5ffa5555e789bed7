"""The acl plugin through a real node, as Kong behaves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)

FORBIDDEN = {"message": "You cannot consume this service"}


def _route(name: str, acl: dict[str, Any], **key_auth: Any) -> dict[str, Any]:
    plugins = [{"name": "acl", "config": acl}]
    if key_auth.pop("authenticated", True):
        plugins.append({"name": "key-auth", "config": key_auth})
    return {"name": name, "paths": [f"/{name}"], "plugins": plugins}


def _consumer(name: str, *groups: str) -> dict[str, Any]:
    return {
        "username": name,
        "keyauth_credentials": [{"key": f"{name}-key"}],
        "acls": [{"group": group} for group in groups],
    }


def _config(echo: EchoProcess) -> dict[str, Any]:
    admins = {"allow": ["admins"]}
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    _route("allow", admins),
                    _route("deny", {"deny": ["users"]}),
                    _route("hidden", {**admins, "hide_groups_header": True}),
                    _route("unauthenticated", admins, authenticated=False),
                    _route("anonymous", admins, anonymous="guest"),
                    _route("anonymous-deny", {"deny": ["users"]}, anonymous="guest"),
                ],
            }
        ],
        "consumers": [
            _consumer("alice", "admins", "devs"),
            _consumer("bob", "users"),
            _consumer("carol"),
            {"username": "guest"},
        ],
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlaneProcess]:
    with start_echo(tmp_path_factory.mktemp("echo")) as echo:
        config = _config(echo)
        with start_data_plane(tmp_path_factory.mktemp("dp"), declarative=config) as dp:
            yield dp


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def _get(client: httpx.Client, path: str, who: str | None) -> httpx.Response:
    headers = {"apikey": f"{who}-key"} if who else {}
    return client.get(path, headers=headers | {"X-Consumer-Groups": "forged"})


def test_a_consumer_in_an_allowed_group_passes_with_its_groups(
    client: httpx.Client,
) -> None:
    reply = _get(client, "/allow", "alice")
    assert reply.status_code == 200
    assert reply.json()["headers"]["x-consumer-groups"] == "admins, devs"


def test_a_consumer_in_no_allowed_group_gets_403(client: httpx.Client) -> None:
    reply = _get(client, "/allow", "bob")
    assert reply.status_code == 403
    assert reply.json() == FORBIDDEN


def test_an_authenticated_consumer_without_groups_gets_403(
    client: httpx.Client,
) -> None:
    assert _get(client, "/allow", "carol").json() == FORBIDDEN


def test_a_consumer_in_a_denied_group_gets_403(client: httpx.Client) -> None:
    assert _get(client, "/deny", "bob").json() == FORBIDDEN
    assert _get(client, "/deny", "alice").status_code == 200


def test_a_consumer_without_groups_passes_a_deny_list_without_the_header(
    client: httpx.Client,
) -> None:
    reply = _get(client, "/deny", "carol")
    assert reply.status_code == 200
    assert "x-consumer-groups" not in reply.json()["headers"]


def test_hide_groups_header_keeps_the_groups_from_the_upstream(
    client: httpx.Client,
) -> None:
    reply = _get(client, "/hidden", "alice")
    assert reply.status_code == 200
    assert "x-consumer-groups" not in reply.json()["headers"]


def test_a_request_no_plugin_identified_gets_401(client: httpx.Client) -> None:
    reply = _get(client, "/unauthenticated", None)
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}


def test_the_anonymous_consumer_without_groups_gets_401(client: httpx.Client) -> None:
    reply = _get(client, "/anonymous", None)
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}
    assert _get(client, "/anonymous", "alice").status_code == 200


def test_the_anonymous_consumer_passes_a_deny_list(client: httpx.Client) -> None:
    reply = _get(client, "/anonymous-deny", None)
    assert reply.status_code == 200
    assert reply.json()["headers"]["x-consumer-username"] == "guest"
