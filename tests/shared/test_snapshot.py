"""The config snapshot: building, hashing, and merging composite members."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from shared.snapshot import (
    EMPTY_HASH,
    ENTITY_KEYS,
    Conflict,
    build_config,
    config_hash,
    make_snapshot,
    merge_members,
)

# Slow machines raise PORTICO_TEST_TIMEOUT_SCALE, as for every deadline.
TIMEOUT_SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))


def _id(n: int) -> str:
    return str(uuid.UUID(int=n))


def _service(n: int, name: str | None = None, enabled: bool = True) -> dict[str, Any]:
    return {"id": _id(n), "name": name, "host": "example.com", "enabled": enabled}


def _route(n: int, service: int | None, name: str | None = None) -> dict[str, Any]:
    ref = None if service is None else {"id": _id(service)}
    return {"id": _id(n), "name": name, "paths": ["/"], "service": ref}


def _plugin(
    n: int,
    name: str,
    *,
    service: int | None = None,
    route: int | None = None,
    enabled: bool = True,
    instance_name: str | None = None,
) -> dict[str, Any]:
    return {
        "id": _id(n),
        "name": name,
        "instance_name": instance_name,
        "service": None if service is None else {"id": _id(service)},
        "route": None if route is None else {"id": _id(route)},
        "consumer": None,
        "enabled": enabled,
        "config": {},
    }


def test_build_config_has_every_entity_list_and_the_format_version() -> None:
    config = build_config({})
    assert config["_format_version"] == "3.0"
    assert all(config[key] == [] for key in ENTITY_KEYS)


def test_build_config_sorts_each_list_by_id() -> None:
    config = build_config({"services": [_service(3), _service(1), _service(2)]})
    assert [s["id"] for s in config["services"]] == [_id(1), _id(2), _id(3)]


def test_build_config_drops_a_disabled_service_with_its_routes_and_plugins() -> None:
    config = build_config(
        {
            "services": [_service(1, enabled=False), _service(2)],
            "routes": [_route(10, 1), _route(11, 2)],
            "plugins": [_plugin(20, "cors", service=1), _plugin(21, "acl", route=10)],
        }
    )
    assert [s["id"] for s in config["services"]] == [_id(2)]
    assert [r["id"] for r in config["routes"]] == [_id(11)]
    assert config["plugins"] == []


def test_build_config_drops_disabled_plugins() -> None:
    config = build_config(
        {"plugins": [_plugin(1, "cors", enabled=False), _plugin(2, "acl")]}
    )
    assert [p["id"] for p in config["plugins"]] == [_id(2)]


def test_config_hash_is_32_lowercase_hex_characters() -> None:
    digest = config_hash(build_config({}))
    assert len(digest) == 32
    assert digest == digest.lower()
    int(digest, 16)


def test_config_hash_is_the_same_whatever_the_order_of_entities_given() -> None:
    services = [_service(n, f"s{n}") for n in range(5)]
    forward = build_config({"services": services})
    backward = build_config({"services": list(reversed(services))})
    assert config_hash(forward) == config_hash(backward)


def test_config_hash_is_the_same_whatever_the_order_of_keys() -> None:
    one = {"_format_version": "3.0", "services": [{"id": _id(1), "name": "a"}]}
    other = {"services": [{"name": "a", "id": _id(1)}], "_format_version": "3.0"}
    assert config_hash(one) == config_hash(other)


def test_config_hash_changes_when_an_entity_changes() -> None:
    before = build_config({"services": [_service(1, "a")]})
    after = build_config({"services": [_service(1, "b")]})
    assert config_hash(before) != config_hash(after)


def test_the_hash_of_an_empty_config_is_not_the_empty_hash() -> None:
    assert config_hash(build_config({})) != EMPTY_HASH


def test_make_snapshot_hashes_the_config_independently_of_the_version() -> None:
    config = build_config({"services": [_service(1)]})
    first = make_snapshot("g", 1, config)
    second = make_snapshot("g", 7, config)
    assert first.hash == second.hash == config_hash(config)
    assert (first.group_id, first.version) == ("g", 1)


def test_a_snapshot_is_immutable() -> None:
    snapshot = make_snapshot("g", 1, build_config({}))
    with pytest.raises(AttributeError):
        snapshot.version = 2  # type: ignore[misc]


def test_merge_members_concatenates_and_sorts_members_entities() -> None:
    one = build_config({"services": [_service(3, "c")]})
    two = build_config({"services": [_service(1, "a")], "routes": [_route(2, 1)]})
    result = merge_members([("m1", one), ("m2", two)])
    assert result.conflicts == ()
    assert result.config is not None
    assert [s["id"] for s in result.config["services"]] == [_id(1), _id(3)]
    assert len(result.config["routes"]) == 1
    assert result.config["_format_version"] == "3.0"


def test_merge_members_of_no_members_is_an_empty_config() -> None:
    result = merge_members([])
    assert result.config == build_config({})


def test_merge_members_reports_both_sides_of_a_duplicate_service_name() -> None:
    one = build_config({"services": [_service(1, "svc1")]})
    two = build_config({"services": [_service(2, "svc1")]})
    result = merge_members([("m1", one), ("m2", two)])
    assert result.config is None
    assert result.conflicts == (
        Conflict(
            "m1", f"conflicting entity found: ID={_id(1)}, Name=svc1", _id(1), "service"
        ),
        Conflict(
            "m2", f"conflicting entity found: ID={_id(2)}, Name=svc1", _id(2), "service"
        ),
    )


def test_merge_members_reports_a_duplicate_id() -> None:
    one = build_config({"routes": [_route(5, None, "a")]})
    two = build_config({"routes": [_route(5, None, "b")]})
    result = merge_members([("m1", one), ("m2", two)])
    assert [(c.cluster_id, c.resource_type) for c in result.conflicts] == [
        ("m1", "route"),
        ("m2", "route"),
    ]


def test_merge_members_reports_a_duplicate_route_name() -> None:
    one = build_config({"routes": [_route(1, None, "r")]})
    two = build_config({"routes": [_route(2, None, "r")]})
    assert len(merge_members([("m1", one), ("m2", two)]).conflicts) == 2


@pytest.mark.parametrize("field", ["username", "custom_id"])
def test_merge_members_reports_a_duplicate_consumer_identity(field: str) -> None:
    one = build_config({"consumers": [{"id": _id(1), field: "bob"}]})
    two = build_config({"consumers": [{"id": _id(2), field: "bob"}]})
    conflicts = merge_members([("m1", one), ("m2", two)]).conflicts
    assert [c.resource_type for c in conflicts] == ["consumer", "consumer"]
    assert conflicts[0].description.endswith("Name=bob")


def test_merge_members_reports_a_duplicate_basic_auth_username() -> None:
    one = build_config({"basicauth_credentials": [{"id": _id(1), "username": "u"}]})
    two = build_config({"basicauth_credentials": [{"id": _id(2), "username": "u"}]})
    conflicts = merge_members([("m1", one), ("m2", two)]).conflicts
    assert [c.resource_type for c in conflicts] == ["basicauth_credential"] * 2


def test_merge_members_reports_a_duplicate_key_without_showing_the_key() -> None:
    one = build_config({"keyauth_credentials": [{"id": _id(1), "key": "secret"}]})
    two = build_config({"keyauth_credentials": [{"id": _id(2), "key": "secret"}]})
    conflicts = merge_members([("m1", one), ("m2", two)]).conflicts
    assert len(conflicts) == 2
    assert all("secret" not in c.description for c in conflicts)


def test_merge_members_reports_the_same_global_plugin_in_two_members() -> None:
    one = build_config({"plugins": [_plugin(1, "basic-auth")]})
    two = build_config({"plugins": [_plugin(2, "basic-auth")]})
    conflicts = merge_members([("m1", one), ("m2", two)]).conflicts
    assert [(c.cluster_id, c.resource_id) for c in conflicts] == [
        ("m1", _id(1)),
        ("m2", _id(2)),
    ]


def test_merge_members_accepts_the_same_plugin_scoped_in_two_members() -> None:
    one = build_config({"plugins": [_plugin(1, "cors", service=10)]})
    two = build_config({"plugins": [_plugin(2, "cors")]})
    assert merge_members([("m1", one), ("m2", two)]).conflicts == ()


def test_merge_members_reports_a_duplicate_plugin_instance_name() -> None:
    one = build_config({"plugins": [_plugin(1, "cors", service=9, instance_name="x")]})
    two = build_config({"plugins": [_plugin(2, "acl", route=8, instance_name="x")]})
    assert len(merge_members([("m1", one), ("m2", two)]).conflicts) == 2


def test_merge_members_reports_each_entity_once_even_with_several_clashes() -> None:
    one = build_config({"services": [_service(1, "same")]})
    two = build_config({"services": [_service(1, "same")]})
    assert len(merge_members([("m1", one), ("m2", two)]).conflicts) == 2


def test_merge_members_reports_every_conflict_of_every_kind() -> None:
    one = build_config(
        {"services": [_service(1, "s")], "consumers": [{"id": _id(3), "username": "u"}]}
    )
    two = build_config(
        {"services": [_service(2, "s")], "consumers": [{"id": _id(4), "username": "u"}]}
    )
    kinds = [c.resource_type for c in merge_members([("a", one), ("b", two)]).conflicts]
    assert sorted(kinds) == ["consumer", "consumer", "service", "service"]


def test_merge_members_lets_consumers_and_their_credentials_span_members() -> None:
    one = build_config({"consumers": [{"id": _id(1), "username": "bob"}]})
    two = build_config(
        {
            "basicauth_credentials": [
                {"id": _id(2), "username": "b", "consumer": {"id": _id(1)}}
            ]
        }
    )
    result = merge_members([("m1", one), ("m2", two)])
    assert result.config is not None
    assert result.config["basicauth_credentials"][0]["consumer"] == {"id": _id(1)}


def test_a_conflict_serialises_in_konnects_group_status_shape() -> None:
    conflict = Conflict("m1", "conflicting entity found: ID=x, Name=s", "x", "service")
    assert conflict.as_dict() == {
        "cluster_id": "m1",
        "description": "conflicting entity found: ID=x, Name=s",
        "resource": {"id": "x", "type": "service"},
    }


def test_merging_then_hashing_equals_hashing_the_same_entities_built_at_once() -> None:
    services = [_service(n, f"s{n}") for n in range(6)]
    merged = merge_members(
        [
            ("a", build_config({"services": services[:3]})),
            ("b", build_config({"services": services[3:]})),
        ]
    ).config
    assert merged is not None
    assert config_hash(merged) == config_hash(build_config({"services": services}))


def _member_config(member: int, size: int) -> dict[str, Any]:
    base = member * size * 10
    services = [_service(base + n, f"m{member}-s{n}") for n in range(size // 2)]
    routes = [
        _route(base + size + n, base + n, f"m{member}-r{n}") for n in range(size // 2)
    ]
    return build_config({"services": services, "routes": routes})


def test_rebuilding_a_composite_of_ten_members_of_1000_entities_is_fast() -> None:
    members = [(f"m{i}", _member_config(i, 1000)) for i in range(10)]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        result = merge_members(members)
        assert result.config is not None
        config_hash(result.config)
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[2] < 0.1 * TIMEOUT_SCALE
