"""The ip-restriction plugin through a real node, as Kong 3 behaves."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_plane.plugins.ip_restriction import Networks, client_address
from tests.support.dataplane import proxy_to_echo


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "ip-restriction", "config": config}],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route("denied", deny=["127.0.0.1"]),
        _route("custom", deny=["127.0.0.0/8"], status=401, message="go"),
        _route("elsewhere", allow=["10.0.0.0/8", "2001:db8::/32"]),
        _route("allowed", allow=["127.0.0.0/24", "::1"]),
        _route("both", allow=["127.0.0.1"], deny=["127.0.0.1/32"]),
        _route("v6", allow=["::/0"]),
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_a_denied_address_gets_kong_3s_message(client: httpx.Client) -> None:
    reply = client.get("/denied")
    assert reply.status_code == 403
    assert reply.json() == {"message": "IP address not allowed: 127.0.0.1"}


def test_status_and_message_are_configurable(client: httpx.Client) -> None:
    reply = client.get("/custom")
    assert reply.status_code == 401
    assert reply.json() == {"message": "go"}


def test_an_address_outside_the_allow_list_is_refused(client: httpx.Client) -> None:
    assert client.get("/elsewhere").status_code == 403


def test_an_address_in_an_allowed_range_passes(client: httpx.Client) -> None:
    assert client.get("/allowed").status_code == 200


def test_deny_wins_over_allow(client: httpx.Client) -> None:
    assert client.get("/both").status_code == 403


def test_an_ipv4_client_is_not_in_an_ipv6_range(client: httpx.Client) -> None:
    assert client.get("/v6").status_code == 403


def test_networks_match_by_prefix() -> None:
    networks = Networks(["10.1.0.0/16", "192.168.1.7", "2001:db8::/32"])
    assert ipaddress.ip_address("10.1.255.3") in networks
    assert ipaddress.ip_address("10.2.0.1") not in networks
    assert ipaddress.ip_address("192.168.1.7") in networks
    assert ipaddress.ip_address("192.168.1.8") not in networks
    assert ipaddress.ip_address("2001:db8:1::5") in networks
    assert ipaddress.ip_address("2001:db9::5") not in networks


def test_a_host_bits_cidr_is_taken_as_its_network() -> None:
    assert ipaddress.ip_address("10.0.0.9") in Networks(["10.0.0.5/24"])


def test_an_ipv4_mapped_peer_is_matched_as_ipv4() -> None:
    assert client_address("::ffff:127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert client_address("not an address") is None
