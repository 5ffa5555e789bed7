"""The rules of composite runtime group membership (Konnect's limits).

A composite holds at most 256 members, changed at most 50 at a time; a
member is a standard hybrid group, belongs to at most 5 composites and has no
connected data plane nodes when it joins. :func:`check_change` applies the
rules and returns the composite's new member list; it runs inside the store's
transaction, so that concurrent requests cannot both slip under a limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from control_plane.problems import Problem
from shared.errors import InvalidParameter

MAX_MEMBERS = 256
MAX_PER_CALL = 50
MAX_COMPOSITES_PER_GROUP = 5

HYBRID = "hybrid"
COMPOSITE = "composite"
OPERATIONS = ("add", "remove", "replace")


def _names(groups: Mapping[str, Mapping[str, Any]], ids: Sequence[str]) -> str:
    return ", ".join(f"'{groups[i]['name']}' ({i})" if i in groups else i for i in ids)


def _refuse(
    status: int, detail: str, ids: Sequence[str], rule: str, reason: str
) -> Problem:
    params = [InvalidParameter("members", rule, f"{reason}: {', '.join(ids)}")]
    return Problem(status, detail, params, extra={"groups": list(ids)})


def check_change(
    composite: Mapping[str, Any],
    operation: str,
    ids: Sequence[str],
    *,
    groups: Mapping[str, Mapping[str, Any]],
    members: Mapping[str, Sequence[str]],
    connected: Mapping[str, int],
) -> list[str]:
    """Return the composite's members after `operation`, or refuse it.

    `groups` holds every group by id, `members` every composite's members and
    `connected` the connected node count of each group named in `ids`.
    """
    assert operation in OPERATIONS, f"unknown membership operation {operation}"
    composite_id = composite["id"]
    if composite["cluster_type"] != COMPOSITE:
        raise Problem(
            400,
            f"runtime group '{composite['name']}' ({composite_id}) is not a "
            "composite runtime group: only composite groups have members",
            [InvalidParameter("id", "type", "not a composite runtime group")],
        )
    if len(ids) > MAX_PER_CALL:
        raise Problem(
            400,
            f"at most {MAX_PER_CALL} members can be changed in one call, "
            f"got {len(ids)}",
            [InvalidParameter("members", "max_items", f"at most {MAX_PER_CALL}")],
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise _refuse(
            400,
            f"runtime group(s) listed more than once: {_names(groups, repeated)}",
            repeated,
            "unique",
            "listed more than once",
        )
    unknown = [i for i in ids if i not in groups]
    if unknown:
        raise _refuse(
            404 if operation != "remove" else 400,
            f"no runtime group with id(s) {', '.join(unknown)}",
            unknown,
            "exists",
            "no such runtime group",
        )

    current = list(members.get(composite_id, []))
    if operation == "remove":
        strangers = [i for i in ids if i not in current]
        if strangers:
            raise _refuse(
                400,
                f"runtime group(s) {_names(groups, strangers)} are not members of "
                f"'{composite['name']}'",
                strangers,
                "is_member",
                "not a member",
            )
        return [m for m in current if m not in ids]

    new = (
        ids
        if operation == "replace"
        else current + [i for i in ids if i not in current]
    )
    joining = [i for i in new if i not in current]
    _check_joining(composite, joining, groups, members, connected)
    if len(new) > MAX_MEMBERS:
        raise Problem(
            400,
            f"a composite runtime group has at most {MAX_MEMBERS} members; "
            f"'{composite['name']}' would have {len(new)}",
            [InvalidParameter("members", "max_items", f"at most {MAX_MEMBERS}")],
        )
    return list(new)


def _check_joining(
    composite: Mapping[str, Any],
    joining: Sequence[str],
    groups: Mapping[str, Mapping[str, Any]],
    members: Mapping[str, Sequence[str]],
    connected: Mapping[str, int],
) -> None:
    if composite["id"] in joining:
        raise _refuse(
            400,
            "a composite runtime group cannot be a member of itself",
            [composite["id"]],
            "type",
            "a composite runtime group",
        )
    nested = [i for i in joining if groups[i]["cluster_type"] == COMPOSITE]
    if nested:
        raise _refuse(
            400,
            f"composite runtime groups cannot be members of another composite: "
            f"{_names(groups, nested)}",
            nested,
            "type",
            "a composite runtime group",
        )
    other = [i for i in joining if groups[i]["cluster_type"] != HYBRID]
    if other:
        raise _refuse(
            400,
            "only standard hybrid runtime groups can be members (no Kubernetes "
            f"ingress controller groups): {_names(groups, other)}",
            other,
            "type",
            "not a hybrid runtime group",
        )
    crowded = [
        i
        for i in joining
        if sum(1 for m in members.values() if i in m) >= MAX_COMPOSITES_PER_GROUP
    ]
    if crowded:
        raise _refuse(
            400,
            f"a runtime group can be a member of at most {MAX_COMPOSITES_PER_GROUP} "
            f"composite runtime groups: {_names(groups, crowded)} already are",
            crowded,
            "max_memberships",
            f"already a member of {MAX_COMPOSITES_PER_GROUP} composites",
        )
    busy = [i for i in joining if connected.get(i, 0) > 0]
    if busy:
        raise _refuse(
            400,
            "runtime groups with connected data plane nodes cannot join a "
            f"composite runtime group: {_names(groups, busy)}",
            busy,
            "no_connected_nodes",
            "has connected data plane nodes",
        )
