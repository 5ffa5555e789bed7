"""The reload scenario's configs and targets, without running a load."""

from __future__ import annotations

from bench.scenarios import reload
from bench.scenarios.proxy import declarative_config
from shared.credentials import hash_password

STORED = hash_password("x")


def _ids(config: dict[str, list[dict[str, object]]], key: str) -> set[object]:
    return {entity["id"] for entity in config[key]}


def test_the_large_config_has_ten_thousand_routes_and_consumers() -> None:
    config = reload.large_config(declarative_config(8080), 1, STORED)
    assert len(config["routes"]) == reload.ROUTES + 1
    assert len(config["consumers"]) == reload.CONSUMERS + 1
    assert len(config["basicauth_credentials"]) == len(config["consumers"])


def test_two_variants_differ_by_one_route_and_one_consumer() -> None:
    base = declarative_config(8080)
    one = reload.large_config(base, 1, STORED)
    two = reload.large_config(base, 2, STORED)
    assert len(_ids(one, "routes") ^ _ids(two, "routes")) == 2
    assert len(_ids(one, "consumers") ^ _ids(two, "consumers")) == 2
    shared = [r for r in one["routes"] if r["id"] in _ids(two, "routes")]
    assert all(r in two["routes"] for r in shared)


def test_entities_carry_fixed_timestamps_so_a_reload_keeps_them_equal() -> None:
    config = reload.large_config(declarative_config(8080), 1, STORED)
    for key in ("services", "routes", "consumers", "basicauth_credentials"):
        assert all(entity.get("updated_at") for entity in config[key]), key


def test_without_measurements_every_target_is_skipped() -> None:
    targets = reload._targets({}, None, "no nginx")
    assert targets and {t.status for t in targets} == {"skipped"}
