"""Deltas turn one config into another, hash-exact, and combine in order."""

from __future__ import annotations

import copy
from typing import Any

from shared.delta import Delta, apply_delta, diff, entity_count, split, squash
from shared.snapshot import build_config, config_hash


def _service(n: int, **changes: Any) -> dict[str, Any]:
    service = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"svc-{n}",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 8080,
        "enabled": True,
    }
    service.update(changes)
    return service


def _route(n: int, service: int) -> dict[str, Any]:
    return {
        "id": f"10000000-0000-4000-8000-{n:012d}",
        "name": f"route-{n}",
        "paths": [f"/r{n}"],
        "service": {"id": _service(service)["id"]},
    }


def _config(services: list[dict[str, Any]], routes: list[dict[str, Any]]) -> Any:
    return build_config({"services": services, "routes": routes})


BEFORE = _config([_service(1), _service(2), _service(3)], [_route(1, 1)])
AFTER = _config(
    [_service(1), _service(3, port=9090), _service(4)],
    [_route(1, 1), _route(2, 4)],
)


def test_a_delta_turns_the_old_config_into_the_new_one_hash_exact() -> None:
    result = apply_delta(BEFORE, diff(BEFORE, AFTER))
    assert result == AFTER
    assert config_hash(result) == config_hash(AFTER)


def test_a_delta_holds_only_what_changed() -> None:
    delta = diff(BEFORE, AFTER)
    assert [s["name"] for s in delta.upserts["services"]] == ["svc-3", "svc-4"]
    assert [r["name"] for r in delta.upserts["routes"]] == ["route-2"]
    assert delta.deletes == {"services": [_service(2)["id"]]}
    assert delta.size == 4


def test_equal_configs_give_an_empty_delta() -> None:
    assert diff(BEFORE, copy.deepcopy(BEFORE)).size == 0


def test_applying_leaves_the_old_config_untouched() -> None:
    before = copy.deepcopy(BEFORE)
    apply_delta(BEFORE, diff(BEFORE, AFTER))
    assert before == BEFORE


def test_plain_fields_come_from_the_new_config() -> None:
    newer = {**AFTER, "_format_version": "3.1"}
    assert apply_delta(BEFORE, diff(BEFORE, newer))["_format_version"] == "3.1"


def test_squashed_deltas_equal_the_delta_of_the_ends() -> None:
    middle = _config([_service(2), _service(5)], [])
    squashed = squash([diff(BEFORE, middle), diff(middle, AFTER)])
    assert squashed is not None
    assert apply_delta(BEFORE, squashed) == AFTER
    # Service 5 came and went on the way: the squash carries nothing of it.
    ids = {e["id"] for e in squashed.upserts["services"]}
    assert _service(5)["id"] not in ids
    assert _service(5)["id"] in squashed.deletes["services"]


def test_deltas_whose_lists_differ_do_not_squash() -> None:
    first = Delta(("routes", "services"))
    second = Delta(("services",))
    assert squash([first, second]) is None


def test_split_and_count_tell_lists_from_fields() -> None:
    lists, fields = split(AFTER)
    assert "services" in lists and "routes" in lists
    assert fields == {"_format_version": "3.0"}
    assert entity_count(AFTER) == 5
