"""The routes scenario's configs: the load's requests match the same routes."""

from __future__ import annotations

from collections import Counter

from bench.scenarios import routes
from data_plane.router import Router


def _router(count: int) -> Router[str]:
    config = routes.routing_config(8080, count)
    return Router([(route, route["name"]) for route in config["routes"]])


def _kind(route: dict[str, object]) -> str:
    paths = route.get("paths") or []
    assert isinstance(paths, list)
    if route.get("hosts"):
        return "host"
    return "regex" if paths[0].startswith("~") else "prefix"


def test_the_large_config_mixes_prefix_host_and_regex_routes() -> None:
    config = routes.routing_config(8080, routes.LARGE)
    kinds = Counter(_kind(route) for route in config["routes"])
    assert sum(kinds.values()) == routes.LARGE
    assert min(kinds.values()) >= routes.LARGE // 3


def test_every_request_matches_the_same_route_in_both_configs() -> None:
    few, many = _router(routes.SMALL), _router(routes.LARGE)
    assert len(routes.routing_config(8080, routes.SMALL)["routes"]) == routes.SMALL
    for path, host in routes.requests():
        hostname = "" if host == "127.0.0.1" else host
        a = few.match("GET", hostname, path, {})
        b = many.match("GET", hostname, path, {})
        assert a is not None and b is not None, (host, path)
        assert a.target == b.target


def test_the_load_asks_for_every_kind_of_route() -> None:
    config = routes.routing_config(8080, routes.SMALL)
    assert set(Counter(_kind(route) for route in config["routes"])) == {
        "prefix",
        "host",
        "regex",
    }
