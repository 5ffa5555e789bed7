"""The cors plugin through a real node, as Kong behaves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.dataplane import proxy_to_echo

PREFLIGHT = {"Origin": "http://a.test", "Access-Control-Request-Method": "POST"}


def _route(name: str, *more: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "cors", "config": config}, *more],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route("any"),
        _route(
            "listed",
            origins=["http://a.test", r"https://.*\.b\.test"],
            headers=["X-One", "X-Two"],
            exposed_headers=["X-Out"],
            methods=["GET", "POST"],
            max_age=3600,
            credentials=True,
        ),
        _route("any-credentials", credentials=True),
        _route("continue", preflight_continue=True),
        _route("locked", {"name": "key-auth"}, origins=["http://a.test"]),
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_a_preflight_is_answered_200_with_the_defaults(client: httpx.Client) -> None:
    reply = client.options(
        "/any", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Mine"}
    )
    assert reply.status_code == 200
    assert reply.content == b""
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.headers["access-control-allow-methods"] == (
        "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
    )
    assert reply.headers["access-control-allow-headers"] == "X-Mine"
    assert "access-control-max-age" not in reply.headers
    assert "access-control-allow-credentials" not in reply.headers
    assert "method" not in reply.text  # the upstream was not asked


def test_a_preflight_gets_the_configured_headers(client: httpx.Client) -> None:
    reply = client.options("/listed", headers=PREFLIGHT)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://a.test"
    assert reply.headers["vary"] == "Origin"
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["access-control-allow-headers"] == "X-One,X-Two"
    assert reply.headers["access-control-allow-methods"] == "GET,POST"
    assert reply.headers["access-control-max-age"] == "3600"


def test_a_response_gets_origin_credentials_and_exposed_headers(
    client: httpx.Client,
) -> None:
    reply = client.get("/listed", headers={"Origin": "http://a.test"})
    assert reply.status_code == 200
    assert reply.json()["path"] == "/"
    assert reply.headers["access-control-allow-origin"] == "http://a.test"
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["access-control-expose-headers"] == "X-Out"
    assert reply.headers["vary"] == "Origin"


def test_a_regex_origin_matches_whole_origins_only(client: httpx.Client) -> None:
    good = client.get("/listed", headers={"Origin": "https://x.b.test"})
    assert good.headers["access-control-allow-origin"] == "https://x.b.test"
    bad = client.get("/listed", headers={"Origin": "https://x.b.test.evil"})
    assert "access-control-allow-origin" not in bad.headers


def test_a_default_port_does_not_change_the_origin(client: httpx.Client) -> None:
    reply = client.get("/listed", headers={"Origin": "http://a.test:80"})
    assert reply.headers["access-control-allow-origin"] == "http://a.test:80"


def test_an_unlisted_origin_gets_no_allow_origin(client: httpx.Client) -> None:
    reply = client.get("/listed", headers={"Origin": "http://c.test"})
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers
    assert reply.headers["vary"] == "Origin"


def test_any_origin_is_star_without_credentials(client: httpx.Client) -> None:
    reply = client.get("/any", headers={"Origin": "http://a.test"})
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "vary" not in reply.headers


def test_credentials_with_any_origin_echo_the_origin(client: httpx.Client) -> None:
    reply = client.get("/any-credentials", headers={"Origin": "http://z.test"})
    assert reply.headers["access-control-allow-origin"] == "http://z.test"
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["vary"] == "Origin"


def test_preflight_continue_sends_the_preflight_upstream(
    client: httpx.Client,
) -> None:
    reply = client.options("/continue", headers=PREFLIGHT)
    assert reply.status_code == 200
    assert reply.json()["method"] == "OPTIONS"
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-methods" not in reply.headers


def test_an_answer_of_a_later_plugin_gets_cors_headers(client: httpx.Client) -> None:
    reply = client.get("/locked", headers={"Origin": "http://a.test"})
    assert reply.status_code == 401
    assert reply.json() == {"message": "No API key found in request"}
    assert reply.headers["access-control-allow-origin"] == "http://a.test"
    assert reply.headers["vary"] == "Origin"


def test_a_preflight_runs_before_authentication(client: httpx.Client) -> None:
    reply = client.options("/locked", headers=PREFLIGHT)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://a.test"
