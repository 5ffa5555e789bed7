"""The proxy scenario's config and arithmetic, without running a load."""

from __future__ import annotations

import base64

from bench.scenarios import proxy
from bench.scenarios.proxy import NGINX, PORTICO_AUTH, Samples


def test_basic_auth_guards_mock_and_not_open() -> None:
    config = proxy.declarative_config(8080)
    routes = {route["name"]: route["id"] for route in config["routes"]}
    by_route: dict[str, list[str]] = {}
    for plugin in config["plugins"]:
        by_route.setdefault(plugin["route"]["id"], []).append(plugin["name"])
    assert by_route[routes["mock"]] == ["basic-auth"]
    assert routes["open"] not in by_route


def test_the_suite_route_stacks_key_auth_rate_limiting_and_cors() -> None:
    config = proxy.declarative_config(8080)
    suite = next(r["id"] for r in config["routes"] if r["name"] == "suite")
    names = {p["name"] for p in config["plugins"] if p["route"]["id"] == suite}
    assert names == {"key-auth", "rate-limiting", "cors"}
    (credential,) = config["keyauth_credentials"]
    assert credential["key"] == proxy.API_KEY


def test_credential_in_the_header_is_the_one_in_the_config() -> None:
    config = proxy.declarative_config(8080)
    (credential,) = config["basicauth_credentials"]
    encoded = proxy.authorization().removeprefix("Basic ")
    username, password = base64.b64decode(encoded).decode().split(":", 1)
    assert (username, password) == (credential["username"], credential["password"])


def test_ratios_pair_runs_taken_side_by_side() -> None:
    samples = {
        NGINX: Samples([100.0, 200.0, 100.0], [], [], [], []),
        PORTICO_AUTH: Samples([50.0, None, 40.0], [], [], [], []),
    }
    assert proxy._run_ratios(samples, PORTICO_AUTH) == [0.5, 0.4]


def test_no_ratio_without_nginx() -> None:
    samples = {PORTICO_AUTH: Samples([50.0], [], [], [], [])}
    assert proxy._median_ratio(samples, PORTICO_AUTH) is None


def test_the_many_routes_config_puts_basic_auth_on_every_route() -> None:
    config = proxy.many_routes_config(8080, 50)
    route_ids = {route["id"] for route in config["routes"]}
    assert len(route_ids) == 50
    assert {route["paths"][0] for route in config["routes"]} >= {"/mock"}
    guarded = {plugin["route"]["id"] for plugin in config["plugins"]}
    assert guarded == route_ids
    assert len(config["consumers"]) == len(config["basicauth_credentials"]) == 50


def test_the_bench_credential_is_among_the_many() -> None:
    config = proxy.many_routes_config(8080, 50)
    usernames = {c["username"] for c in config["basicauth_credentials"]}
    assert proxy.USERNAME in usernames
