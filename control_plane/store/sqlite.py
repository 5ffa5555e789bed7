"""The SQLite store: runtime groups, memberships, entities and snapshots.

Every SQL statement of Portico lives in this module and its two siblings
(`sqlite_worker`, `sqlite_records`). An entity write, the version bumps of
its group and of every composite holding it, and the snapshot rows commit
in one transaction; the in-memory configs move only once it succeeded.
Entity writes that arrive while the worker is busy commit together, so a
burst costs one rebuild per group instead of one per write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from control_plane.config_cache import (
    CONFLICT,
    OK,
    CachePlan,
    ConfigCache,
    conflicts_json,
    now_iso,
)
from control_plane.group_state import GroupState
from control_plane.memberships import check_change
from control_plane.problems import Problem, not_found
from control_plane.store.base import Commit, CompositeStatus, EditResult, Plan, Store
from control_plane.store.sqlite_records import SqliteRecords
from control_plane.store.sqlite_worker import dumps as _dumps
from shared.snapshot import Snapshot, make_snapshot

T = TypeVar("T")

COMPOSITE = "composite"


class SqliteStore(SqliteRecords, Store):
    """Keep everything in one SQLite file, caching configs in memory."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # Edits waiting for the worker, and whether a drain is scheduled.
        self._pending: deque[tuple[str, Plan[Any], asyncio.Future[Any]]] = deque()
        self._draining = False
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._cache = ConfigCache()

    def _notify(self, commit: Commit) -> None:
        callback = self.on_commit
        if callback is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(callback, commit)

    # Lifecycle.

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._connect()
        with self.db.conn:
            self.db.execute(
                "UPDATE nodes SET connected = 0,"
                " body = json_set(body, '$.connected', json('false'))"
            )
        self._load()

    def _load(self) -> None:
        for row in self._rows("SELECT * FROM groups ORDER BY created_at, id"):
            self._groups[row["id"]] = self._group_from_row(row)
        for row in self._rows("SELECT * FROM memberships ORDER BY position"):
            self._members.setdefault(row["composite_id"], []).append(row["member_id"])
        rows: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for row in self._rows("SELECT group_id, type, body FROM entities"):
            rows.setdefault(row["group_id"], []).append(
                (row["type"], orjson.loads(row["body"]))
            )
        saved = {r["group_id"]: r for r in self._rows("SELECT * FROM snapshots")}
        composites = []
        for group_id, group in self._groups.items():
            version = saved[group_id]["version"] if group_id in saved else 1
            if group["cluster_type"] == COMPOSITE:
                composites.append((group_id, version))
                continue
            state = GroupState.from_rows(rows.get(group_id, []))
            self._cache.install(self._cache.plan_standard(group_id, state, version, {}))
        for group_id, version in composites:
            self._load_composite(group_id, version, saved.get(group_id))

    def _load_composite(
        self, group_id: str, version: int, saved: dict[str, Any] | None
    ) -> None:
        plan = self._cache.plan_composite(group_id, version, self.members(group_id))
        if saved is not None and saved["state"] == CONFLICT and saved["held_config"]:
            config = orjson.loads(saved["held_config"])
            plan.snapshots[group_id] = make_snapshot(group_id, version, config)
        self._cache.install(plan)

    # Reads of the in-memory state run on the event loop, without a trip to
    # the worker: it replaces cached objects whole (one dict assignment, or
    # a copy of a dict's items taken in one step), so a reader sees a value
    # before or after a commit, never half of one. A write's caller hears of
    # it once its commit is installed, so it reads what it wrote; and reads
    # do not queue behind writes, such as the rows of a thousand nodes.

    async def current_snapshots(self) -> list[tuple[Snapshot, bool]]:
        statuses = self._cache.statuses
        return [
            (snap, gid in statuses and statuses[gid].state == CONFLICT)
            for gid, snap in list(self._cache.snapshots.items())
        ]

    # Runtime groups.

    @staticmethod
    def _group_from_row(row: dict[str, Any]) -> dict[str, Any]:
        group = dict(row)
        group["labels"] = orjson.loads(row["labels"])
        group["proxy_urls"] = orjson.loads(row["proxy_urls"])
        return group

    def members(self, composite_id: str) -> list[str]:
        """Return a composite's members."""
        return self._members.get(composite_id, [])

    def composites(self, group_id: str) -> list[str]:
        """Return the composites holding a group."""
        return [c for c, members in list(self._members.items()) if group_id in members]

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self._groups.get(group_id)
        if group is None:
            raise not_found("runtime group", group_id)
        return group

    def _name_taken(self, name: str, group_id: str | None) -> None:
        for other in self._groups.values():
            if other["name"] == name and other["id"] != group_id:
                raise Problem(409, f"a runtime group named '{name}' already exists")

    async def create_group(self, group: dict[str, Any]) -> dict[str, Any]:
        return await self._run(self._create_group, dict(group))

    def _create_group(self, group: dict[str, Any]) -> dict[str, Any]:
        self._name_taken(group["name"], None)
        group["config_version"] = 1
        row = dict(group)
        row["labels"] = _dumps(group["labels"])
        row["proxy_urls"] = _dumps(group["proxy_urls"])
        if group["cluster_type"] == COMPOSITE:
            plan = self._cache.plan_composite(group["id"], 1, [])
        else:
            plan = self._cache.plan_standard(group["id"], GroupState(), 1, {})
        with self.db.conn:
            self.db.table("groups").insert(row)
            self._persist(plan)
        self._groups[group["id"]] = group
        self._finish(plan)
        return dict(group)

    async def get_group(self, group_id: str) -> dict[str, Any] | None:
        # Read without a trip to the worker: the worker replaces group dicts
        # or sets one key at a time, both atomic for a reader on the loop.
        group = self._groups.get(group_id)
        return None if group is None else dict(group)

    async def list_groups(self) -> list[dict[str, Any]]:
        return [dict(group) for group in list(self._groups.values())]

    async def update_group(
        self, group_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._run(self._update_group, group_id, dict(changes))

    def _update_group(self, group_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        group = dict(self._group(group_id))
        if "name" in changes:
            self._name_taken(changes["name"], group_id)
        group.update(changes)
        group["updated_at"] = now_iso()
        row = {k: group[k] for k in ("name", "description", "auth_type", "updated_at")}
        row["labels"] = _dumps(group["labels"])
        row["proxy_urls"] = _dumps(group["proxy_urls"])
        with self.db.conn:
            self.db.table("groups").update(group_id, row)
        self._groups[group_id] = group
        return dict(group)

    async def delete_group(self, group_id: str) -> None:
        await self._run(self._delete_group, group_id)

    def _delete_group(self, group_id: str) -> None:
        self._group(group_id)
        holders = self.composites(group_id)
        if holders:
            names = ", ".join(f"'{self._groups[c]['name']}' ({c})" for c in holders)
            raise Problem(
                409,
                f"runtime group '{self._groups[group_id]['name']}' is a member of "
                f"the composite runtime group(s) {names}; remove it from them first",
                extra={"composites": holders},
            )
        with self.db.conn:
            for table in ("entities", "certificates", "nodes", "snapshots"):
                self.db.execute(f"DELETE FROM {table} WHERE group_id = ?", [group_id])
            self.db.execute(
                "DELETE FROM memberships WHERE composite_id = ?", [group_id]
            )
            self.db.execute("DELETE FROM groups WHERE id = ?", [group_id])
        del self._groups[group_id]
        self._members.pop(group_id, None)
        self._cache.forget(group_id)
        self._notify(Commit(forgotten=(group_id,)))

    # Memberships.

    async def members_of(self, composite_id: str) -> list[str]:
        return list(self.members(composite_id))

    async def composites_of(self, group_id: str) -> list[str]:
        return self.composites(group_id)

    async def change_members(
        self,
        composite_id: str,
        operation: str,
        member_ids: Sequence[str],
        *,
        dry_run: bool = False,
    ) -> CompositeStatus:
        return await self._run(
            self._change_members, composite_id, operation, list(member_ids), dry_run
        )

    def _change_members(
        self, composite_id: str, operation: str, ids: list[str], dry_run: bool
    ) -> CompositeStatus:
        composite = self._group(composite_id)
        connected = {
            gid: self._count_connected(gid) for gid in ids if gid in self._groups
        }
        new_members = check_change(
            composite,
            operation,
            ids,
            groups=self._groups,
            members=self._members,
            connected=connected,
        )
        if dry_run:
            return self._cache.preview(composite_id, new_members)
        known = self._cache.statuses.get(composite_id)
        if new_members == self.members(composite_id) and known is not None:
            # Nothing changes: no new version, no push to data plane nodes.
            return known
        version = composite["config_version"] + 1
        plan = self._cache.plan_composite(composite_id, version, new_members)
        with self.db.conn:
            self.db.execute(
                "DELETE FROM memberships WHERE composite_id = ?", [composite_id]
            )
            self.db.table("memberships").insert_all(
                {"composite_id": composite_id, "member_id": m, "position": i}
                for i, m in enumerate(new_members)
            )
            self._bump(composite_id, version)
            self._persist(plan)
        self._members[composite_id] = new_members
        self._finish(plan, {composite_id: version})
        return plan.statuses[composite_id]

    async def composite_status(self, composite_id: str) -> CompositeStatus:
        group = self._group(composite_id)
        status = self._cache.statuses.get(composite_id)
        if status is None:
            stamp = group["created_at"]
            return CompositeStatus(composite_id, "UNKNOWN", (), stamp, stamp)
        return status

    # Entities, versions and snapshots.

    async def state(self, group_id: str) -> GroupState:
        self._group(group_id)
        return self._cache.states.get(group_id) or GroupState()

    async def edit(self, group_id: str, plan: Plan[T]) -> T:
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((group_id, plan, future))
        if not self._draining:
            self._start_drain(loop)
        result: T = await future
        return result

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on the loop thread only, so `_draining` needs no lock.
        self._draining = True
        done = loop.run_in_executor(self._executor, self._drain)
        done.add_done_callback(lambda _: self._drained(loop))

    def _drained(self, loop: asyncio.AbstractEventLoop) -> None:
        self._draining = False
        if self._pending:
            self._start_drain(loop)

    def _drain(self) -> None:
        """Apply every pending edit in one transaction (worker thread).

        Edits that queued up while the previous transaction ran commit
        together: each plan sees the state the edits before it left, a plan
        that raises fails alone, and every touched group and composite is
        rebuilt once. Each applied edit still bumps the version by one.
        """
        batch = []
        while self._pending:
            batch.append(self._pending.popleft())
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        states: dict[str, GroupState] = {}
        counts: dict[str, int] = {}
        changes: list[tuple[str, EditResult[Any]]] = []
        for group_id, planner, future in batch:
            try:
                state = states.get(group_id) or self._editable(group_id)
                result = planner(state)
            except Exception as exc:
                outcomes.append((future, None, exc))
                continue
            if result.upserts or result.deletes:
                states[group_id] = state.with_changes(result.upserts, result.deletes)
                counts[group_id] = counts.get(group_id, 0) + 1
                changes.append((group_id, result))
            outcomes.append((future, result.value, None))
        if changes:
            try:
                self._commit_changes(states, counts, changes)
            except Exception as exc:
                # Nothing was applied: every edit of the batch fails with it.
                outcomes = [(f, None, e or exc) for f, _, e in outcomes]
        assert self._loop is not None, "edits come from the event loop"
        for future, value, error in outcomes:
            self._loop.call_soon_threadsafe(_settle, future, value, error)

    def _editable(self, group_id: str) -> GroupState:
        group = self._group(group_id)
        state = self._cache.states.get(group_id)
        if state is None:
            raise Problem(
                400, f"runtime group '{group['name']}' holds no entities of its own"
            )
        return state

    def _commit_changes(
        self,
        states: dict[str, GroupState],
        counts: dict[str, int],
        changes: list[tuple[str, EditResult[Any]]],
    ) -> None:
        versions = {g: self._groups[g]["config_version"] + n for g, n in counts.items()}
        composite_counts: dict[str, int] = {}
        for group_id, count in counts.items():
            for composite_id in self.composites(group_id):
                composite_counts[composite_id] = (
                    composite_counts.get(composite_id, 0) + count
                )
        composites = {
            c: (self._groups[c]["config_version"] + n, self.members(c))
            for c, n in composite_counts.items()
        }
        changed: dict[str, dict[str, set[str]]] = {}
        for group_id, result in changes:
            touched = changed.setdefault(group_id, {})
            for type_name, entity_id in result.deletes:
                touched.setdefault(type_name, set()).add(entity_id)
            for type_name, entity in result.upserts:
                touched.setdefault(type_name, set()).add(entity["id"])
        plan = self._cache.plan_groups(
            {g: (states[g], versions[g]) for g in states}, composites, changed
        )
        with self.db.conn:
            for group_id, result in changes:
                for type_name, entity_id in result.deletes:
                    self.db.execute(
                        "DELETE FROM entities"
                        " WHERE group_id = ? AND type = ? AND id = ?",
                        [group_id, type_name, entity_id],
                    )
                self.db.conn.executemany(
                    "INSERT OR REPLACE INTO entities (group_id, type, id, body) "
                    "VALUES (?, ?, ?, ?)",
                    [(group_id, t, e["id"], _dumps(e)) for t, e in result.upserts],
                )
            for group_id, version in versions.items():
                self._bump(group_id, version)
            for composite_id, (version, _) in composites.items():
                self._bump(composite_id, version)
            self._persist(plan)
        versions.update({c: v for c, (v, _) in composites.items()})
        self._finish(plan, versions)

    def _bump(self, group_id: str, version: int) -> None:
        self.db.execute(
            "UPDATE groups SET config_version = ? WHERE id = ?", [version, group_id]
        )

    def _persist(self, plan: CachePlan) -> None:
        """Write the snapshot rows of a plan, inside the caller's transaction."""
        for group_id, snapshot in plan.snapshots.items():
            status = plan.statuses.get(group_id)
            self.db.execute(
                "INSERT INTO snapshots (group_id, version, hash, state, conflicts,"
                " held_config, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, '[]', NULL, ?, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET version = excluded.version,"
                " hash = excluded.hash, state = excluded.state, conflicts = '[]',"
                " held_config = NULL, updated_at = excluded.updated_at",
                [group_id, snapshot.version, snapshot.hash, OK, now_iso(), now_iso()],
            )
        for group_id, status in plan.statuses.items():
            if status.state != CONFLICT:
                continue
            held = plan.held_configs.get(group_id)
            self.db.execute(
                "INSERT INTO snapshots (group_id, version, hash, state, conflicts,"
                " held_config, created_at, updated_at)"
                " VALUES (?, 0, '', ?, ?, ?, ?, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET state = excluded.state,"
                " conflicts = excluded.conflicts, updated_at = excluded.updated_at,"
                " held_config = COALESCE(excluded.held_config, held_config)",
                [
                    group_id,
                    CONFLICT,
                    _dumps(conflicts_json(status)),
                    None if held is None else orjson.dumps(held),
                    status.created_at,
                    status.updated_at,
                ],
            )

    def _finish(self, plan: CachePlan, versions: dict[str, int] | None = None) -> None:
        for group_id, version in (versions or {}).items():
            self._groups[group_id]["config_version"] = version
        self._cache.install(plan)
        self._notify(plan.commit())

    async def expected_snapshot(self, group_id: str) -> Snapshot | None:
        self._group(group_id)
        return self._cache.snapshots.get(group_id)


def _settle(
    future: asyncio.Future[Any], value: Any, error: BaseException | None
) -> None:
    """Hand an edit's outcome to its caller (event loop thread)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
