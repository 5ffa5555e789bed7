"""Patching a config gives exactly what a full build gives, hash and delta too."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from shared.delta import apply_delta, diff, digest_after
from shared.patch import patch_config
from shared.snapshot import (
    ENTITY_KEYS,
    ConfigDigest,
    build_config,
    config_hash,
    merge_digests,
    merge_members,
)

Tables = dict[str, dict[str, dict[str, Any]]]


def _id(kind: int, n: int) -> str:
    return f"{kind:08d}-0000-4000-8000-{n:012d}"


def _tables(**lists: list[dict[str, Any]]) -> Tables:
    tables: Tables = {key: {} for key in ENTITY_KEYS}
    for key, entities in lists.items():
        tables[key] = {e["id"]: e for e in entities}
    return tables


def _entities(tables: Tables) -> dict[str, list[dict[str, Any]]]:
    return {key: list(table.values()) for key, table in tables.items()}


def _service(n: int, enabled: bool = True) -> dict[str, Any]:
    return {"id": _id(1, n), "name": f"s{n}", "enabled": enabled}


def _route(n: int, service: int) -> dict[str, Any]:
    return {"id": _id(2, n), "paths": [f"/r{n}"], "service": {"id": _id(1, service)}}


def _plugin(n: int, **scope: Any) -> dict[str, Any]:
    return {"id": _id(3, n), "name": "cors", "enabled": True, **scope}


def _consumer(n: int) -> dict[str, Any]:
    return {"id": _id(4, n), "username": f"u{n}"}


def _edit(
    tables: Tables,
    upserts: Sequence[tuple[str, dict[str, Any]]] = (),
    deletes: Sequence[tuple[str, str]] = (),
) -> tuple[Tables, dict[str, set[str]]]:
    after = {key: dict(table) for key, table in tables.items()}
    changed: dict[str, set[str]] = {}
    for key, entity_id in deletes:
        after[key].pop(entity_id, None)
        changed.setdefault(key, set()).add(entity_id)
    for key, entity in upserts:
        after[key][entity["id"]] = entity
        changed.setdefault(key, set()).add(entity["id"])
    return after, changed


def _check(before: Tables, after: Tables, changed: Mapping[str, set[str]]) -> Any:
    """Patch, then compare with a full build; return the patch."""
    old = build_config(_entities(before))
    patched = patch_config(old, ConfigDigest.of(old), before, after, changed)
    assert patched is not None
    full = build_config(_entities(after))
    assert patched.config == full
    assert patched.digest.hexdigest() == config_hash(full)
    assert apply_delta(old, patched.delta) == full
    return patched


BASE = _tables(
    services=[_service(1), _service(2)],
    routes=[_route(1, 1), _route(2, 2)],
    plugins=[_plugin(1, route={"id": _id(2, 1)}), _plugin(2)],
    consumers=[_consumer(n) for n in range(1, 6)],
)


def test_adding_an_entity_inserts_it_in_id_order() -> None:
    after, changed = _edit(BASE, upserts=[("consumers", _consumer(0))])
    patched = _check(BASE, after, changed)
    assert patched.delta.upserts == {"consumers": [_consumer(0)]}
    assert patched.delta.deletes == {}


def test_replacing_and_removing_entities() -> None:
    renamed = dict(_consumer(3), username="renamed")
    after, changed = _edit(
        BASE,
        upserts=[("consumers", renamed)],
        deletes=[("consumers", _id(4, 5)), ("plugins", _id(3, 2))],
    )
    patched = _check(BASE, after, changed)
    assert patched.delta.upserts == {"consumers": [renamed]}
    assert patched.delta.deletes == {
        "consumers": [_id(4, 5)],
        "plugins": [_id(3, 2)],
    }


def test_untouched_lists_are_shared_with_the_previous_config() -> None:
    old = build_config(_entities(BASE))
    after, changed = _edit(BASE, upserts=[("consumers", _consumer(9))])
    patched = patch_config(old, ConfigDigest.of(old), BASE, after, changed)
    assert patched is not None
    assert patched.config["routes"] is old["routes"]
    assert patched.config["consumers"] is not old["consumers"]


def test_an_unchanged_rewrite_makes_an_empty_delta() -> None:
    after, changed = _edit(BASE, upserts=[("consumers", dict(_consumer(2)))])
    assert _check(BASE, after, changed).delta.size == 0


def test_a_disabled_plugin_leaves_the_config() -> None:
    off = dict(_plugin(2), enabled=False)
    after, changed = _edit(BASE, upserts=[("plugins", off)])
    assert _check(BASE, after, changed).delta.deletes == {"plugins": [_id(3, 2)]}


def test_a_route_and_plugin_added_to_a_disabled_service_stay_out() -> None:
    tables = _tables(services=[_service(1), _service(2, enabled=False)])
    after, changed = _edit(
        tables,
        upserts=[
            ("routes", _route(7, 1)),
            ("plugins", _plugin(7, service=_service(2))),
        ],
    )
    # The new route's service is enabled, the plugin's is not.
    patched = _check(tables, after, changed)
    assert [r["id"] for r in patched.config["routes"]] == [_id(2, 7)]
    assert patched.config["plugins"] == []


@pytest.mark.parametrize(
    "edit",
    [
        [("services", _service(1, enabled=False))],
        [("routes", _route(1, 3))],
    ],
    ids=["service disabled", "route moved to a disabled service"],
)
def test_touching_a_left_out_service_or_route_asks_for_a_full_build(
    edit: list[tuple[str, dict[str, Any]]],
) -> None:
    tables = _tables(
        services=[_service(1), _service(3, enabled=False)],
        routes=[_route(1, 1)],
        plugins=[_plugin(1, route={"id": _id(2, 1)})],
    )
    old = build_config(_entities(tables))
    after, changed = _edit(tables, upserts=edit)
    assert patch_config(old, ConfigDigest.of(old), tables, after, changed) is None


def test_random_edits_always_match_a_full_build() -> None:
    rng = random.Random(7)
    tables = BASE
    for step in range(300):
        upserts: list[tuple[str, dict[str, Any]]] = []
        deletes: list[tuple[str, str]] = []
        for _ in range(rng.randint(1, 4)):
            n = rng.randint(0, 20)
            kind = rng.choice(["consumers", "plugins", "routes"])
            if rng.random() < 0.3:
                deletes.append(
                    (kind, _id({"consumers": 4, "plugins": 3}.get(kind, 2), n))
                )
            elif kind == "consumers":
                upserts.append((kind, dict(_consumer(n), step=step)))
            elif kind == "plugins":
                upserts.append((kind, dict(_plugin(n), step=step)))
            else:
                upserts.append((kind, dict(_route(n, rng.choice([1, 2])), step=step)))
        after, changed = _edit(tables, upserts, deletes)
        _check(tables, after, changed)
        tables = after


def test_the_digest_after_a_delta_is_the_digest_of_the_result() -> None:
    old = build_config(_entities(BASE))
    after, _ = _edit(
        BASE,
        upserts=[("consumers", _consumer(8)), ("routes", dict(_route(1, 2)))],
        deletes=[("plugins", _id(3, 1))],
    )
    new = build_config(_entities(after))
    digest = digest_after(ConfigDigest.of(old), old, diff(old, new))
    assert digest.hexdigest() == config_hash(new)


def test_the_digest_of_a_merge_is_the_sum_of_its_members() -> None:
    one = build_config({"consumers": [_consumer(1)], "services": [_service(1)]})
    two = build_config({"consumers": [_consumer(2)], "routes": [_route(2, 1)]})
    merged = merge_members([("a", one), ("b", two)]).config
    assert merged is not None
    digest = merge_digests([ConfigDigest.of(one), ConfigDigest.of(two)])
    assert digest is not None
    assert digest.hexdigest() == config_hash(merged)
    empty = merge_members([]).config
    assert empty is not None
    assert merge_digests([]) == ConfigDigest.of(empty)
    assert merge_digests([ConfigDigest.of(one), None]) is None
