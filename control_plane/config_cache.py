"""The in-memory configs of every runtime group and how a change spreads.

The store keeps one :class:`ConfigCache`. It holds each standard group's
entities and built config, each group's current snapshot and each composite's
merge state. A change is first *planned* (nothing in the cache moves), the
store persists what the :class:`CachePlan` says inside its transaction, and
only after the commit succeeds is the plan installed. A failed transaction
therefore leaves the cache as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from control_plane.changelog import Change
from control_plane.group_state import GroupState
from control_plane.store.base import Commit, CompositeStatus
from shared.delta import Delta
from shared.patch import Changed, patch_config
from shared.snapshot import (
    Config,
    ConfigDigest,
    Snapshot,
    build_config,
    make_snapshot,
    merge_digests,
    merge_members,
)

OK = "OK"
CONFLICT = "CONFLICT"
UNKNOWN = "UNKNOWN"


def now_iso() -> str:
    """Return the current time as Konnect writes it (ISO-8601, UTC, ms)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CachePlan:
    """What one transaction changes in the cache, and what it must persist."""

    states: dict[str, GroupState] = field(default_factory=dict)
    configs: dict[str, Config] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    statuses: dict[str, CompositeStatus] = field(default_factory=dict)
    # Composites that entered a conflict: their last good config is persisted.
    held_configs: dict[str, Config] = field(default_factory=dict)
    holds: list[tuple[str, bool]] = field(default_factory=list)
    # Deltas known from the edits themselves, keyed by group.
    changes: dict[str, Change] = field(default_factory=dict)

    def commit(self) -> Commit:
        """Return what data plane nodes must learn once the plan is committed."""
        return Commit(
            snapshots=tuple(self.snapshots.values()),
            holds=tuple(self.holds),
            changes=self.changes,
        )


class ConfigCache:
    """Hold the current entities, configs, snapshots and merge states."""

    def __init__(self) -> None:
        self.states: dict[str, GroupState] = {}
        self.configs: dict[str, Config] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.statuses: dict[str, CompositeStatus] = {}

    def plan_standard(
        self,
        group_id: str,
        state: GroupState,
        version: int,
        composites: Mapping[str, tuple[int, Sequence[str]]],
    ) -> CachePlan:
        """Plan a standard group's new state and the rebuild of its composites.

        `composites` maps each composite holding the group to its new version
        and its members.
        """
        return self.plan_groups({group_id: (state, version)}, composites)

    def plan_groups(
        self,
        groups: Mapping[str, tuple[GroupState, int]],
        composites: Mapping[str, tuple[int, Sequence[str]]],
        changed: Mapping[str, Changed] | None = None,
    ) -> CachePlan:
        """Plan new states of standard groups, then merge each composite once.

        `changed` names, per group, the entity ids that differ from the
        group's current state; such a group's config is patched rather than
        built again, at a cost that follows the size of the change.
        """
        plan = CachePlan()
        for group_id, (state, version) in groups.items():
            plan.states[group_id] = state
            touched = None if changed is None else changed.get(group_id)
            snapshot = self._patch(group_id, state, version, touched, plan)
            if snapshot is None:
                config = build_config(state.entities())
                snapshot = make_snapshot(group_id, version, config)
            plan.configs[group_id] = snapshot.config
            plan.snapshots[group_id] = snapshot
        for composite_id, (composite_version, members) in composites.items():
            self._plan_merge(
                plan, composite_id, composite_version, members, same_members=True
            )
        return plan

    def _patch(
        self,
        group_id: str,
        state: GroupState,
        version: int,
        touched: Changed | None,
        plan: CachePlan,
    ) -> Snapshot | None:
        previous = self.snapshots.get(group_id)
        before = self.states.get(group_id)
        if (
            touched is None
            or previous is None
            or previous.digest is None
            or before is None
        ):
            return None
        patched = patch_config(
            previous.config, previous.digest, before.tables, state.tables, touched
        )
        if patched is None:
            return None
        snapshot = make_snapshot(group_id, version, patched.config, patched.digest)
        plan.changes[group_id] = Change(
            previous.version, previous.hash, version, snapshot.hash, patched.delta
        )
        return snapshot

    def plan_composite(
        self, composite_id: str, version: int, members: Sequence[str]
    ) -> CachePlan:
        """Plan the rebuild of one composite with the given members."""
        plan = CachePlan()
        self._plan_merge(plan, composite_id, version, members, same_members=False)
        return plan

    def preview(self, composite_id: str, members: Sequence[str]) -> CompositeStatus:
        """Return the merge state a composite would have with `members`."""
        plan = self.plan_composite(composite_id, 0, members)
        return plan.statuses[composite_id]

    def install(self, plan: CachePlan) -> None:
        """Make a committed plan the current state."""
        self.states.update(plan.states)
        self.configs.update(plan.configs)
        self.snapshots.update(plan.snapshots)
        self.statuses.update(plan.statuses)

    def forget(self, group_id: str) -> None:
        """Drop everything cached about a deleted group."""
        for table in (self.states, self.configs, self.snapshots, self.statuses):
            table.pop(group_id, None)

    def _plan_merge(
        self,
        plan: CachePlan,
        composite_id: str,
        version: int,
        members: Sequence[str],
        same_members: bool,
    ) -> None:
        configs = [
            (member, plan.configs.get(member) or self.configs[member])
            for member in members
        ]
        result = merge_members(configs)
        previous = self.statuses.get(composite_id)
        stamp = now_iso()
        created = previous.created_at if previous else stamp
        if result.config is not None:
            digest = merge_digests([self._digest(plan, m) for m in members])
            snapshot = make_snapshot(composite_id, version, result.config, digest)
            plan.snapshots[composite_id] = snapshot
            last = self.snapshots.get(composite_id)
            if (
                same_members
                and last is not None
                and previous is not None
                and previous.state == OK
            ):
                self._plan_composite_change(plan, last, snapshot, members)
            plan.statuses[composite_id] = CompositeStatus(
                composite_id, OK, (), created, stamp
            )
            plan.holds.append((composite_id, False))
            return
        plan.statuses[composite_id] = CompositeStatus(
            composite_id, CONFLICT, result.conflicts, created, stamp
        )
        plan.holds.append((composite_id, True))
        last_good = self.snapshots.get(composite_id)
        if last_good is not None and (previous is None or previous.state != CONFLICT):
            plan.held_configs[composite_id] = last_good.config

    def _digest(self, plan: CachePlan, group_id: str) -> ConfigDigest | None:
        snapshot = plan.snapshots.get(group_id) or self.snapshots.get(group_id)
        return None if snapshot is None else snapshot.digest

    def _plan_composite_change(
        self,
        plan: CachePlan,
        last: Snapshot,
        snapshot: Snapshot,
        members: Sequence[str],
    ) -> None:
        # Members hold disjoint ids while the merge succeeds, so the
        # composite's delta is the union of its changed members' deltas;
        # members untouched by the plan did not change.
        changes = []
        for member in members:
            if member in plan.snapshots:
                change = plan.changes.get(member)
                if change is None:
                    return
                changes.append(change.delta)
        upserts: dict[str, list[Any]] = {}
        deletes: dict[str, list[str]] = {}
        for delta in changes:
            if delta.fields != changes[0].fields or delta.lists != changes[0].lists:
                return
            for key, entities in delta.upserts.items():
                upserts.setdefault(key, []).extend(entities)
            for key, ids in delta.deletes.items():
                deletes.setdefault(key, []).extend(ids)
        if not changes:
            return
        merged = Delta(changes[0].lists, changes[0].fields, upserts, deletes)
        plan.changes[snapshot.group_id] = Change(
            last.version, last.hash, snapshot.version, snapshot.hash, merged
        )


def conflicts_json(status: CompositeStatus) -> list[dict[str, Any]]:
    """Return a status's conflicts as JSON-ready dicts."""
    return [conflict.as_dict() for conflict in status.conflicts]
