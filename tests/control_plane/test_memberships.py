"""The membership rules, on plain data (the API tests cover the wiring)."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.memberships import MAX_MEMBERS, check_change
from control_plane.problems import Problem


def groups(count: int) -> dict[str, dict[str, Any]]:
    made = {
        f"g{i}": {"id": f"g{i}", "name": f"group {i}", "cluster_type": "hybrid"}
        for i in range(count)
    }
    made["c"] = {"id": "c", "name": "composite", "cluster_type": "composite"}
    return made


def test_a_composite_holds_at_most_256_members() -> None:
    known = groups(MAX_MEMBERS + 1)
    members = {"c": [f"g{i}" for i in range(MAX_MEMBERS)]}
    with pytest.raises(Problem) as refused:
        check_change(
            known["c"],
            "add",
            [f"g{MAX_MEMBERS}"],
            groups=known,
            members=members,
            connected={},
        )
    assert refused.value.status == 400 and "256" in refused.value.detail


def test_a_group_with_connected_nodes_is_named_in_the_refusal() -> None:
    known = groups(2)
    with pytest.raises(Problem) as refused:
        check_change(
            known["c"],
            "add",
            ["g0", "g1"],
            groups=known,
            members={},
            connected={"g1": 2},
        )
    assert "group 1" in refused.value.detail and "group 0" not in refused.value.detail


def test_removing_a_stranger_is_refused() -> None:
    known = groups(1)
    with pytest.raises(Problem):
        check_change(
            known["c"], "remove", ["g0"], groups=known, members={}, connected={}
        )


def test_replace_keeps_the_given_order() -> None:
    known = groups(3)
    new = check_change(
        known["c"],
        "replace",
        ["g2", "g0"],
        groups=known,
        members={"c": ["g1"]},
        connected={},
    )
    assert new == ["g2", "g0"]
