"""The correlation-id plugin through a real node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.dataplane import proxy_to_echo

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "correlation-id", "config": config}],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route("counter"),
        _route("uuid", generator="uuid", header_name="X-Req"),
        _route("tracker", generator="tracker"),
        _route("echo", echo_downstream=True, header_name="X-Id"),
        {
            "name": "locked",
            "paths": ["/locked"],
            "plugins": [
                {
                    "name": "correlation-id",
                    "config": {"echo_downstream": True},
                },
                {"name": "key-auth"},
            ],
        },
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_uuid_counter_is_the_default_and_counts(client: httpx.Client) -> None:
    first = client.get("/counter").json()["headers"]["kong-request-id"]
    second = client.get("/counter").json()["headers"]["kong-request-id"]
    found = re.fullmatch(f"({UUID})#([0-9]+)", first)
    assert found is not None, first
    assert second == f"{found.group(1)}#{int(found.group(2)) + 1}"


def test_the_uuid_generator_and_header_name_are_configurable(
    client: httpx.Client,
) -> None:
    headers = client.get("/uuid").json()["headers"]
    assert re.fullmatch(UUID, headers["x-req"])
    assert "kong-request-id" not in headers


def test_the_tracker_generator_names_the_node_process_and_time(
    client: httpx.Client,
) -> None:
    value = client.get("/tracker").json()["headers"]["kong-request-id"]
    assert re.fullmatch(r".+-[0-9]+-[0-9]+-[0-9]+\.[0-9]{3}", value), value


def test_an_id_the_client_sent_is_kept(client: httpx.Client) -> None:
    reply = client.get("/counter", headers={"Kong-Request-ID": "mine"})
    assert reply.json()["headers"]["kong-request-id"] == "mine"


def test_an_empty_id_is_replaced(client: httpx.Client) -> None:
    reply = client.get("/counter", headers={"Kong-Request-ID": ""})
    assert reply.json()["headers"]["kong-request-id"] != ""


def test_the_id_is_not_echoed_by_default(client: httpx.Client) -> None:
    assert "kong-request-id" not in client.get("/counter").headers


def test_echo_downstream_sends_the_made_id_back(client: httpx.Client) -> None:
    reply = client.get("/echo")
    sent = reply.json()["headers"]["x-id"]
    assert reply.headers.get_list("x-id") == [sent]


def test_echo_downstream_sends_the_clients_id_back(client: httpx.Client) -> None:
    reply = client.get("/echo", headers={"X-Id": "given"})
    assert reply.headers.get_list("x-id") == ["given"]


def test_echo_downstream_reaches_an_answer_of_a_later_plugin(
    client: httpx.Client,
) -> None:
    reply = client.get("/locked")
    assert reply.status_code == 401
    assert re.fullmatch(f"{UUID}#[0-9]+", reply.headers["kong-request-id"])
