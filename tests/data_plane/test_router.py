"""Kong's traditional router semantics, and that lookups are indexed."""

from __future__ import annotations

from typing import Any

import pytest

from data_plane.router import Router
from shared.errors import ValidationError


def route(name: str, created_at: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": name, "created_at": created_at, **fields}


def pick(
    routes: list[dict[str, Any]],
    path: str,
    *,
    host: str = "",
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> str | None:
    router: Router[str] = Router([(r, r["id"]) for r in routes])
    found = router.match(method, host, path, headers or {})
    return None if found is None else found.target


def test_a_plain_path_matches_as_a_prefix() -> None:
    assert pick([route("a", paths=["/mock"])], "/mockery/x") == "a"


def test_a_path_that_is_not_a_prefix_does_not_match() -> None:
    assert pick([route("a", paths=["/mock/"])], "/mock") is None


def test_the_longest_prefix_wins() -> None:
    routes = [route("short", paths=["/a"]), route("long", paths=["/a/b"])]
    assert pick(routes, "/a/b/c") == "long"
    assert pick(routes, "/a/c") == "short"


def test_a_regex_path_is_anchored_at_the_start() -> None:
    routes = [route("re", paths=[r"~/users/\d+$"])]
    assert pick(routes, "/users/42") == "re"
    assert pick(routes, "/x/users/42") is None


def test_a_regex_path_beats_a_prefix_path() -> None:
    routes = [route("prefix", paths=["/users/42"]), route("re", paths=[r"~/users/\d+"])]
    assert pick(routes, "/users/42") == "re"


def test_a_higher_regex_priority_wins_among_regexes() -> None:
    routes = [
        route("low", paths=[r"~/a/\w+"], regex_priority=1),
        route("high", paths=[r"~/a/b"], regex_priority=5),
    ]
    assert pick(routes, "/a/b") == "high"


def test_pcre_named_groups_are_accepted() -> None:
    assert pick([route("re", paths=[r"~/u/(?<id>\d+)"])], "/u/7") == "re"


def test_a_route_with_more_fields_wins() -> None:
    routes = [
        route("path", paths=["/a"]),
        route("path-method", paths=["/a"], methods=["GET"]),
    ]
    assert pick(routes, "/a", method="GET") == "path-method"
    assert pick(routes, "/a", method="POST") == "path"


def test_a_plain_host_matches_exactly_and_case_insensitively() -> None:
    routes = [route("h", hosts=["Example.com"])]
    assert pick(routes, "/", host="example.com") == "h"
    assert pick(routes, "/", host="other.com") is None


def test_a_leftmost_wildcard_host_matches_subdomains() -> None:
    routes = [route("w", hosts=["*.example.com"])]
    assert pick(routes, "/", host="api.example.com") == "w"
    assert pick(routes, "/", host="a.b.example.com") == "w"
    assert pick(routes, "/", host="example.com") is None


def test_a_rightmost_wildcard_host_matches_any_top_level() -> None:
    routes = [route("w", hosts=["example.*"])]
    assert pick(routes, "/", host="example.org") == "w"
    assert pick(routes, "/", host="www.example.org") is None


def test_plain_hosts_win_over_wildcard_hosts() -> None:
    routes = [
        route("wild", hosts=["*.example.com"], created_at=1),
        route("plain", hosts=["api.example.com"], created_at=2),
    ]
    assert pick(routes, "/", host="api.example.com") == "plain"


def test_headers_must_match_one_of_the_values() -> None:
    routes = [route("h", paths=["/"], headers={"X-Version": ["v1", "v2"]})]
    assert pick(routes, "/", headers={"x-version": "V2"}) == "h"
    assert pick(routes, "/", headers={"x-version": "v3"}) is None
    assert pick(routes, "/") is None


def test_a_header_value_with_tilde_star_is_a_regex() -> None:
    routes = [route("h", paths=["/"], headers={"x-v": ["~*^v\\d$"]})]
    assert pick(routes, "/", headers={"x-v": "V7"}) == "h"


def test_more_headers_win() -> None:
    routes = [
        route("one", headers={"a": ["1"]}, paths=["/"]),
        route("one-b", headers={"b": ["1"]}, paths=["/"]),
        route("two", headers={"a": ["1"], "b": ["1"]}, paths=["/"]),
    ]
    assert pick(routes, "/", headers={"a": "1", "b": "1"}) == "two"


def test_the_older_route_wins_a_tie() -> None:
    routes = [
        route("new", paths=["/a"], created_at=5),
        route("old", paths=["/a"], created_at=1),
    ]
    assert pick(routes, "/a") == "old"


def test_methods_restrict_the_match() -> None:
    routes = [route("m", methods=["POST"])]
    assert pick(routes, "/", method="POST") == "m"
    assert pick(routes, "/", method="GET") is None


def test_a_route_with_only_snis_never_matches_plain_http() -> None:
    assert pick([route("s", snis=["example.com"])], "/") is None


def test_the_match_reports_how_much_of_the_path_matched() -> None:
    router: Router[str] = Router([(route("re", paths=[r"~/v\d+"]), "re")])
    found = router.match("GET", "", "/v12/x", {})
    assert found is not None and found.matched == len("/v12")


def test_an_invalid_regex_refuses_the_config() -> None:
    with pytest.raises(ValidationError):
        Router([(route("bad", paths=["~/(unclosed"]), "bad")])


def test_a_lookup_among_ten_thousand_prefix_routes_checks_few_candidates() -> None:
    routes = [(route(f"r{i}", paths=[f"/svc{i}/api"]), f"r{i}") for i in range(10_000)]
    router: Router[str] = Router(routes)
    found = router.match("GET", "", "/svc7777/api/items", {})
    assert found is not None and found.target == "r7777"
    assert router.candidate_checks <= 3


def test_a_lookup_among_many_hosts_checks_only_that_hosts_routes() -> None:
    routes = [
        (route(f"r{i}", hosts=[f"h{i}.example.com"], paths=["/"]), f"r{i}")
        for i in range(5_000)
    ]
    router: Router[str] = Router(routes)
    found = router.match("GET", "h4321.example.com", "/x", {})
    assert found is not None and found.target == "r4321"
    assert router.candidate_checks <= 2


def test_regex_routes_that_cannot_win_are_not_tried() -> None:
    routes = [
        (route(f"re{i}", paths=[f"~/re{i}/\\d+"]), f"re{i}") for i in range(1_000)
    ]
    routes.append((route("hosted", hosts=["a.com"], paths=["/x"]), "hosted"))
    router: Router[str] = Router(routes)
    found = router.match("GET", "a.com", "/x", {})
    assert found is not None and found.target == "hosted"
    assert router.candidate_checks == 1
