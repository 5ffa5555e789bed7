"""A node's sync state, judged against its group's snapshot, in each case."""

from __future__ import annotations

from control_plane.cluster.node import NodeStatus, plugin_issue
from shared.messages import Applied, ApplyError, Hello
from shared.snapshot import Snapshot, build_config, make_snapshot

GROUP = "8a1d6a51-7c1e-4d0a-9d55-2b0c4a1d2e01"


def _snapshot(version: int, plugins: tuple[str, ...] = ()) -> Snapshot:
    entities = [
        {"id": f"00000000-0000-4000-8000-00000000000{i}", "name": name}
        for i, name in enumerate(plugins)
    ]
    return make_snapshot(GROUP, version, build_config({"plugins": entities}))


def _node(current: Snapshot | None = None, *, version: str = "0.1.0") -> NodeStatus:
    hello = Hello(
        node_id="node-1",
        hostname="host",
        portico_version=version,
        plugins=("basic-auth",),
        config_version=None if current is None else current.version,
        config_hash=None if current is None else current.hash,
    )
    return NodeStatus(hello, cp_version="0.1.0")


def test_a_node_running_the_current_snapshot_is_in_sync() -> None:
    current = _snapshot(3)
    assert _node(current).sync_state(current, held=False) == "in_sync"


def test_a_node_running_an_older_snapshot_is_behind() -> None:
    assert _node(_snapshot(2)).sync_state(_snapshot(3), held=False) == "behind"


def test_a_node_that_applied_the_current_version_is_in_sync_again() -> None:
    node, current = _node(_snapshot(2)), _snapshot(3)
    node.applied(Applied(current.version, current.hash, 1.0), lag_ms=4.2)
    assert node.sync_state(current, held=False) == "in_sync"
    assert node.record(current, False)["lag_ms"] == 4.2


def test_a_failed_apply_wins_over_behind() -> None:
    node, current = _node(_snapshot(2)), _snapshot(3)
    node.failed(ApplyError(3, current.hash, "compile", "bad regex"))
    assert node.sync_state(current, held=False) == "apply_failed"
    assert node.record(current, False)["error"] == "version 3: compile: bad regex"


def test_a_held_composite_says_held_rather_than_behind() -> None:
    assert _node(_snapshot(2)).sync_state(_snapshot(3), held=True) == (
        "held_by_conflict"
    )


def test_a_node_of_a_newer_minor_version_is_incompatible() -> None:
    node = _node(version="0.2.0")
    assert node.sync_state(_snapshot(1), held=False) == "incompatible"
    record = node.record(_snapshot(1), False)
    assert record["compatibility_status"]["state"] == (
        "COMPATIBILITY_STATE_INCOMPATIBLE"
    )


def test_a_config_with_a_plugin_the_node_lacks_makes_it_incompatible() -> None:
    node, current = _node(_snapshot(1)), _snapshot(2, ("cors",))
    node.plugin_issue = plugin_issue(node.plugins, current)
    assert node.sync_state(current, held=False) == "incompatible"
    issues = node.record(current, False)["compatibility_status"]["issues"]
    assert issues[0]["affected_resources"] == [{"type": "plugin", "name": "cors"}]


def test_the_record_names_every_field_of_the_nodes_api() -> None:
    record = _node(_snapshot(1)).record(_snapshot(1), False)
    assert {
        "id",
        "hostname",
        "version",
        "last_ping",
        "config_hash",
        "config_version",
        "sync_state",
        "compatibility_status",
        "lag_ms",
    } <= set(record)
