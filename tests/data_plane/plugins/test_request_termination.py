"""The request-termination plugin through a real node, as Kong behaves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.dataplane import proxy_to_echo


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "request-termination", "config": config}],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route("default"),
        _route("teapot", status_code=418),
        _route("closed", status_code=403, message="closed"),
        _route(
            "page",
            status_code=200,
            body="<h1>bye</h1>",
            content_type="text/html",
        ),
        _route("triggered", trigger="X-Stop"),
        _route("echo", status_code=202, echo=True),
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_the_default_is_503_service_unavailable(client: httpx.Client) -> None:
    reply = client.get("/default")
    assert reply.status_code == 503
    assert reply.json() == {"message": "Service unavailable"}


def test_a_status_without_a_kong_message_has_an_empty_body(
    client: httpx.Client,
) -> None:
    reply = client.get("/teapot")
    assert reply.status_code == 418
    assert reply.content == b""
    assert "content-type" not in reply.headers


def test_the_message_is_configurable(client: httpx.Client) -> None:
    reply = client.get("/closed")
    assert reply.status_code == 403
    assert reply.json() == {"message": "closed"}


def test_a_body_is_sent_with_its_content_type(client: httpx.Client) -> None:
    reply = client.get("/page")
    assert reply.status_code == 200
    assert reply.text == "<h1>bye</h1>"
    assert reply.headers["content-type"] == "text/html"


def test_a_trigger_header_or_query_argument_turns_it_on(client: httpx.Client) -> None:
    assert client.get("/triggered").status_code == 200  # the upstream's answer
    assert client.get("/triggered", headers={"X-Stop": "1"}).status_code == 503
    assert client.get("/triggered?X-Stop").status_code == 503
    assert client.get("/triggered?x-stop=1").status_code == 200  # names are exact


def test_echo_returns_the_request(client: httpx.Client) -> None:
    reply = client.post(
        "/echo?a=1&a=2&flag",
        json={"k": "v"},
        headers={"X-Mine": "yes"},
    )
    assert reply.status_code == 202
    echoed = reply.json()
    request = echoed["request"]
    assert request["method"] == "POST"
    assert request["path"] == "/echo"
    assert request["query"] == {"a": ["1", "2"], "flag": True}
    assert request["headers"]["x-mine"] == "yes"
    assert request["body"] == {"k": "v"}
    assert request["raw_body"] == '{"k":"v"}'
    assert request["scheme"] == "http"
    assert echoed["matched_route"]["name"] == "echo"
    assert echoed["matched_service"]["name"] == "echo"
    assert echoed["message"] is None
