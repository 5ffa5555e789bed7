"""The change log hands out squashed deltas from recent versions, bounded."""

from __future__ import annotations

from typing import Any

from control_plane.changelog import ChangeLog
from control_plane.hub import SnapshotHub
from shared.delta import apply_delta
from shared.snapshot import Snapshot, build_config, make_snapshot


def _services(count: int, version: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "name": f"svc-{i}",
            "protocol": "http",
            "host": "127.0.0.1",
            # Each version changes one more service, and adds none.
            "port": 9000 if i < version else 8000,
            "enabled": True,
        }
        for i in range(count)
    ]


def _snapshot(version: int, count: int = 100, group_id: str = "g1") -> Snapshot:
    config = build_config({"services": _services(count, version)})
    return make_snapshot(group_id, version, config)


def _log(versions: range, **bounds: int) -> ChangeLog:
    log = ChangeLog(**bounds)
    for version in versions:
        log.record(_snapshot(version), _snapshot(version + 1))
    return log


def test_a_node_behind_gets_the_changes_since_its_version_in_one_delta() -> None:
    log = _log(range(1, 5))
    delta = log.since(2, _snapshot(2).hash, _snapshot(5))
    assert delta is not None
    assert apply_delta(_snapshot(2).config, delta) == _snapshot(5).config
    assert delta.size == 3


def test_an_unknown_version_gets_no_delta() -> None:
    log = _log(range(1, 5))
    assert log.since(2, "f" * 32, _snapshot(5)) is None
    assert log.since(0, _snapshot(1).hash, _snapshot(5)) is None


def test_a_target_other_than_the_newest_gets_no_delta() -> None:
    log = _log(range(1, 5))
    assert log.since(2, _snapshot(2).hash, _snapshot(4, group_id="g1")) is None


def test_the_log_keeps_a_bounded_number_of_versions() -> None:
    log = _log(range(1, 10), max_versions=3)
    assert log.since(5, _snapshot(5).hash, _snapshot(10)) is None
    assert log.since(7, _snapshot(7).hash, _snapshot(10)) is not None


def test_the_log_keeps_a_bounded_number_of_changed_entities() -> None:
    log = _log(range(1, 10), max_entities=2)
    assert log.since(7, _snapshot(7).hash, _snapshot(10)) is None
    assert log.since(8, _snapshot(8).hash, _snapshot(10)) is not None


def test_a_delta_about_as_large_as_the_config_is_not_offered() -> None:
    log = ChangeLog()
    small = make_snapshot("g1", 1, build_config({"services": _services(40, 1)}))
    renamed = [dict(s, name=s["name"] + "-x") for s in _services(40, 1)]
    other = make_snapshot("g1", 2, build_config({"services": renamed}))
    log.record(small, other)
    assert log.since(1, small.hash, other) is None


def test_a_gap_in_the_versions_starts_the_log_afresh() -> None:
    log = _log(range(1, 4))
    log.record(_snapshot(6), _snapshot(7))
    assert log.since(2, _snapshot(2).hash, _snapshot(7)) is None
    assert log.since(6, _snapshot(6).hash, _snapshot(7)) is not None


def test_the_hub_logs_each_published_change() -> None:
    hub = SnapshotHub()
    for version in range(1, 4):
        hub.publish(_snapshot(version))
    delta = hub.delta(1, _snapshot(1).hash, _snapshot(3))
    assert delta is not None and delta.size == 2
    hub.forget("g1")
    assert hub.delta(1, _snapshot(1).hash, _snapshot(3)) is None
