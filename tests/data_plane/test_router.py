"""Kong's traditional router semantics, and that lookups are indexed."""

from __future__ import annotations

import random
from typing import Any

import pytest

import data_plane.router as router_module
from data_plane.router import Router, _literal_start, prepare
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


def test_an_invalid_header_regex_refuses_the_config_naming_the_header() -> None:
    with pytest.raises(ValidationError, match="header x-v"):
        Router([(route("bad", headers={"x-v": ["~*(unclosed"]}), "bad")])


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


def mixed_routes(count: int) -> list[tuple[dict[str, Any], str]]:
    """Return `count` routes: a third each prefix, host and regex routes."""
    routes = []
    for i in range(count):
        if i % 3 == 0:
            fields: dict[str, Any] = {"paths": [f"/p{i}/api"]}
        elif i % 3 == 1:
            fields = {"hosts": [f"h{i}.example.com"], "paths": ["/"]}
        else:
            fields = {"paths": [f"~/x{i}/\\d+$"]}
        routes.append((route(f"r{i}", **fields), f"r{i}"))
    return routes


def test_a_lookup_among_ten_thousand_mixed_routes_checks_few_candidates() -> None:
    router: Router[str] = Router(mixed_routes(10_000))
    for path, host, expected in [
        ("/p3000/api/items", "", "r3000"),
        ("/anything", "h4000.example.com", "r4000"),
        ("/x5000/42", "", "r5000"),
        ("/x5000/not-a-number", "", None),
    ]:
        router.candidate_checks = 0
        found = router.match("GET", host, path, {})
        assert (found.target if found else None) == expected
        assert router.candidate_checks <= 3, path


def test_a_regex_with_a_top_level_alternation_is_tried_for_every_path() -> None:
    routes = [(route("alt", paths=["~/a/\\d+|/b/\\d+"]), "alt")]
    assert pick([r for r, _ in routes], "/b/7") == "alt"


@pytest.mark.parametrize(
    ("source", "literal"),
    [
        ("/users/\\d+$", "/users/"),
        ("^/users/(?P<id>\\d+)", "/users/"),
        ("/a\\.b/c", "/a.b/c"),
        ("/ab?c", "/a"),
        ("/ab*c", "/a"),
        ("/ab{2}c", "/a"),
        ("/ab+c", "/ab"),
        ("/v[12]/x", "/v"),
        ("/a|/b", ""),
        ("(?i)/users", ""),
        (".*/users", ""),
        ("/x(a|b)/y", "/x"),
        ("/[|]/y", "/"),
    ],
)
def test_a_regex_is_filed_under_the_text_all_its_matches_start_with(
    source: str, literal: str
) -> None:
    assert _literal_start(source) == literal


def test_a_regex_is_tried_only_for_paths_with_its_literal_start() -> None:
    routes = [(route("users", paths=["~/users/\\d+$"]), "users")]
    routes += [(route(f"p{i}", paths=[f"/p{i}/"]), f"p{i}") for i in range(100)]
    router: Router[str] = Router(routes)
    assert router.match("GET", "", "/p42/x", {}) is not None
    assert router.candidate_checks == 1


def test_a_new_config_shares_the_shelves_no_changed_route_sits_on() -> None:
    routes = mixed_routes(300)
    old: Router[str] = Router(routes)
    changed = [*routes[:-1], (route("r299", hosts=["moved.example.com"]), "r299")]
    unchanged = {r["id"] for r, _ in routes[:-1]}
    new: Router[str] = Router(changed, previous=old, unchanged=unchanged)

    # r298 (a host route) sits on a shelf of its own: shared as it was.
    assert new._plain["h298.example.com"] is old._plain["h298.example.com"]
    # r299 was a hostless regex route: the hostless shelf is built again.
    assert new._hostless is not old._hostless
    found = new.match("GET", "moved.example.com", "/", {})
    assert found is not None and found.target == "r299"
    assert new.match("GET", "", "/x299/1", {}) is None
    # The old router still answers as before, for requests already routed.
    found = old.match("GET", "", "/x299/1", {})
    assert found is not None and found.target == "r299"


def test_an_updated_router_answers_like_one_built_from_scratch() -> None:
    routes = mixed_routes(600)
    old: Router[str] = Router(routes)
    # Remove r0 (prefix), change r1 (host) and add a route on r4's host.
    changed = [(route("r1", hosts=["h1.example.com"], paths=["/v2"]), "r1")]
    changed += routes[2:]
    changed.append((route("new", hosts=["h4.example.com"], paths=["/new"]), "new"))
    unchanged = {r["id"] for r, _ in routes[2:]}
    updated: Router[str] = Router(changed, previous=old, unchanged=unchanged)
    scratch: Router[str] = Router(changed)

    requests = [("/p0/api", ""), ("/", "h1.example.com"), ("/v2/x", "h1.example.com")]
    requests += [("/new", "h4.example.com"), ("/old", "h4.example.com")]
    requests += [(f"/x{i}/9", "") for i in range(2, 600, 3)]
    requests += [(f"/p{i}/api", "") for i in range(0, 600, 3)]
    for path, host in requests:
        a = updated.match("GET", host, path, {})
        b = scratch.match("GET", host, path, {})
        assert (a and (a.target, a.matched)) == (b and (b.target, b.matched)), path


def _random_route(rng: random.Random, n: int, version: int) -> dict[str, Any]:
    """Return route `r<n>`: prefixes, regexes, hosts, methods and headers mixed."""
    depth = rng.randint(1, 3)
    stem = "/" + "/".join(f"s{rng.randint(0, 4)}" for _ in range(depth))
    fields: dict[str, Any] = {}
    kind = rng.randint(0, 5)
    if kind == 0:
        fields["paths"] = [stem, stem + "x"]
    elif kind == 1:
        fields["paths"] = [f"~{stem}/\\d+$"]
    elif kind == 2:
        fields["hosts"] = [rng.choice(["a.test", "*.b.test", "c.*"])]
    elif kind == 3:
        fields["paths"] = [stem]
        fields["methods"] = [rng.choice(["GET", "POST"])]
    elif kind == 4:
        fields["paths"] = [stem]
        fields["headers"] = {"x-v": [str(rng.randint(0, 1))]}
    else:
        fields["hosts"] = ["a.test"]
        fields["paths"] = [stem]
    return route(f"r{n}", created_at=rng.randint(0, 3), v=version, **fields)


def _answers(router: Router[str], requests: list[Any]) -> list[Any]:
    found = [router.match(m, h, p, hd) for m, h, p, hd in requests]
    return [f and (f.target, f.matched) for f in found]


def test_routers_derived_change_after_change_answer_like_fresh_ones() -> None:
    rng = random.Random(11)
    requests = [
        (
            rng.choice(["GET", "POST"]),
            rng.choice(["", "a.test", "x.b.test", "c.org"]),
            "/"
            + "/".join(f"s{rng.randint(0, 4)}" for _ in range(rng.randint(1, 4)))
            + rng.choice(["", "x", "/7", "/z"]),
            rng.choice([{}, {"x-v": "0"}, {"x-v": "1"}]),
        )
        for _ in range(300)
    ]
    entities = {n: _random_route(rng, n, 0) for n in range(120)}
    router: Router[str] = Router([(r, r["id"]) for r in entities.values()])
    for version in range(1, 40):
        before = _answers(router, requests)
        changed: set[str] = set()
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(0, 140)
            if n in entities and rng.random() < 0.3:
                del entities[n]
            else:
                entities[n] = _random_route(rng, n, version)
            changed.add(f"r{n}")
        routes = [(r, r["id"]) for r in entities.values()]
        unchanged = {r["id"] for r, _ in routes} - changed
        derived: Router[str] = Router(routes, previous=router, unchanged=unchanged)
        assert _answers(derived, requests) == _answers(Router(routes), requests)
        assert _answers(router, requests) == before  # the old one is untouched
        router = derived


def test_a_small_change_to_a_large_shelf_copies_only_its_way() -> None:
    routes = [(route(f"r{i}", paths=[f"/a{i}/b"]), f"r{i}") for i in range(2000)]
    old: Router[str] = Router(routes)
    added = (route("new", paths=["/a7/c"]), "new")
    unchanged = {r["id"] for r, _ in routes}
    new: Router[str] = Router([*routes, added], previous=old, unchanged=unchanged)
    assert new._hostless is not old._hostless
    # The trie node of /a8 is shared; the one of /a7 holds the new tail.
    assert new._hostless.trie.children["a8"] is old._hostless.trie.children["a8"]
    assert new._hostless.trie.children["a7"] is not old._hostless.trie.children["a7"]
    found = new.match("GET", "", "/a7/c", {})
    assert found is not None and found.target == "new"
    assert old.match("GET", "", "/a7/c", {}) is None


def test_prepare_compiles_regex_paths_ahead_and_leaves_bad_ones_to_the_build() -> None:
    routes = [route("a", paths=["~/prepared/(?<id>\\d+)$"]), route("b", paths=["~/("])]
    router_module._PATTERNS.pop(routes[0]["paths"][0], None)
    prepare(routes)
    assert routes[0]["paths"][0] in router_module._PATTERNS
    assert pick(routes[:1], "/prepared/12") == "a"
    prepare(routes)
    with pytest.raises(ValidationError):
        Router([(r, r["id"]) for r in routes])


def test_a_build_takes_the_entries_prepared_for_the_same_route_objects() -> None:
    routes = mixed_routes(30)
    prepare([r for r, _ in routes[:20]])
    prepared = dict(router_module._PREPARED)
    copy = dict(routes[25][0])
    routes[25] = (copy, "r25")
    router: Router[str] = Router(routes)
    for route_id, (_, filing) in prepared.items():
        assert router._filed[route_id] is filing
    assert "r25" not in prepared and router._filed["r25"].entries
    assert router_module._PREPARED == {}
    found = router.match("GET", "", "/p3/api/x", {})
    assert found is not None and found.target == "r3"
    assert _answers(router, _mixed_requests()) == _answers(
        Router(mixed_routes(30)), _mixed_requests()
    )


def _mixed_requests() -> list[Any]:
    requests: list[Any] = [("GET", "", f"/p{i}/api", {}) for i in range(0, 30, 3)]
    requests += [("GET", f"h{i}.example.com", "/", {}) for i in range(1, 30, 3)]
    requests += [("GET", "", f"/x{i}/5", {}) for i in range(2, 30, 3)]
    return requests


def test_a_build_adopts_the_whole_router_prepared_for_the_same_routes() -> None:
    routes = mixed_routes(60)
    prepare([r for r, _ in routes], whole=True)
    ((_, prepared),) = router_module._PREPARED_WHOLE
    built = _built(Router.build(routes))
    assert built is prepared and router_module._PREPARED_WHOLE == []
    assert _answers(built, _mixed_requests()) == _answers(
        Router(mixed_routes(60)), _mixed_requests()
    )
    # Routes that are other objects (another config) build a router anew.
    prepare([r for r, _ in routes], whole=True)
    ((_, unused),) = router_module._PREPARED_WHOLE
    others = [(dict(r), target) for r, target in routes]
    fresh = _built(Router.build(others))
    assert fresh is not unused and router_module._PREPARED_WHOLE == []
    assert _answers(fresh, _mixed_requests()) == _answers(built, _mixed_requests())


def _built(steps: Any) -> Router[str]:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            router: Router[str] = done.value
            return router
