"""The SQLite store, through sqlite-utils; every SQL statement lives here.

All database work runs on one dedicated worker thread: writes are serialized
(so limits and uniqueness checks cannot race) and the event loop stays free.
The database runs in WAL mode; an operation is one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlite_utils

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
from control_plane.store.base import Commit, CompositeStatus, Plan, Store
from shared.snapshot import Conflict, Snapshot, config_hash

T = TypeVar("T")

COMPOSITE = "composite"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        labels TEXT NOT NULL,
        cluster_type TEXT NOT NULL,
        auth_type TEXT NOT NULL,
        proxy_urls TEXT NOT NULL,
        config_version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        composite_id TEXT NOT NULL REFERENCES groups(id),
        member_id TEXT NOT NULL REFERENCES groups(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (composite_id, member_id)
    );
    CREATE INDEX memberships_by_member ON memberships(member_id);
    CREATE TABLE entities (
        group_id TEXT NOT NULL REFERENCES groups(id),
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (group_id, type, id)
    );
    CREATE TABLE snapshots (
        group_id TEXT PRIMARY KEY REFERENCES groups(id),
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        state TEXT NOT NULL,
        conflicts TEXT NOT NULL,
        held_config BLOB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        groups TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE certificates (
        id TEXT PRIMARY KEY,
        group_id TEXT NOT NULL REFERENCES groups(id),
        cert TEXT NOT NULL,
        title TEXT,
        fingerprint TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE nodes (
        group_id TEXT NOT NULL REFERENCES groups(id),
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        connected INTEGER NOT NULL,
        PRIMARY KEY (group_id, id)
    );
    """,
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteStore(Store):
    """Keep everything in one SQLite file, caching configs in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="portico-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: sqlite_utils.Database | None = None
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._cache = ConfigCache()

    # Plumbing: every call below runs on the worker thread.

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        self._loop = loop
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite_utils.Database:
        assert self._db is not None, "the store is not open"
        return self._db

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _notify(self, commit: Commit) -> None:
        callback = self.on_commit
        if callback is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(callback, commit)

    # Lifecycle.

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path))
        self._db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        with self.db.conn:
            self.db.execute("UPDATE nodes SET connected = 0")
        self._load()

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            self.db.executescript(
                f"BEGIN; {script} INSERT INTO schema_version VALUES ({number}); COMMIT;"
            )

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
            plan.snapshots[group_id] = Snapshot(
                group_id, version, config_hash(config), config
            )
        self._cache.install(plan)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.conn.close)
        self._executor.shutdown(wait=True)

    async def current_snapshots(self) -> list[tuple[Snapshot, bool]]:
        def read() -> list[tuple[Snapshot, bool]]:
            statuses = self._cache.statuses
            return [
                (snap, gid in statuses and statuses[gid].state == CONFLICT)
                for gid, snap in self._cache.snapshots.items()
            ]

        return await self._run(read)

    # Runtime groups.

    @staticmethod
    def _group_from_row(row: dict[str, Any]) -> dict[str, Any]:
        group = dict(row)
        group["labels"] = orjson.loads(row["labels"])
        group["proxy_urls"] = orjson.loads(row["proxy_urls"])
        return group

    def members(self, composite_id: str) -> list[str]:
        return self._members.get(composite_id, [])

    def composites(self, group_id: str) -> list[str]:
        return [c for c, members in self._members.items() if group_id in members]

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
        def read() -> list[dict[str, Any]]:
            return [dict(group) for group in self._groups.values()]

        return await self._run(read)

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
        return await self._run(lambda: list(self.members(composite_id)))

    async def composites_of(self, group_id: str) -> list[str]:
        return await self._run(self.composites, group_id)

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
        def read() -> CompositeStatus:
            self._group(composite_id)
            status = self._cache.statuses.get(composite_id)
            if status is None:
                stamp = self._groups[composite_id]["created_at"]
                return CompositeStatus(composite_id, "UNKNOWN", (), stamp, stamp)
            return status

        return await self._run(read)

    # Entities, versions and snapshots.

    async def state(self, group_id: str) -> GroupState:
        def read() -> GroupState:
            self._group(group_id)
            return self._cache.states.get(group_id) or GroupState()

        return await self._run(read)

    async def edit(self, group_id: str, plan: Plan[T]) -> T:
        return await self._run(self._edit, group_id, plan)

    def _edit(self, group_id: str, planner: Plan[T]) -> T:
        group = self._group(group_id)
        state = self._cache.states[group_id]
        result = planner(state)
        if not result.upserts and not result.deletes:
            return result.value
        new_state = state.with_changes(result.upserts, result.deletes)
        version = group["config_version"] + 1
        composites = {
            c: (self._groups[c]["config_version"] + 1, self.members(c))
            for c in self.composites(group_id)
        }
        plan = self._cache.plan_standard(group_id, new_state, version, composites)
        with self.db.conn:
            for type_name, entity_id in result.deletes:
                self.db.execute(
                    "DELETE FROM entities WHERE group_id = ? AND type = ? AND id = ?",
                    [group_id, type_name, entity_id],
                )
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO entities (group_id, type, id, body) "
                "VALUES (?, ?, ?, ?)",
                [(group_id, t, e["id"], _dumps(e)) for t, e in result.upserts],
            )
            self._bump(group_id, version)
            for composite_id, (composite_version, _) in composites.items():
                self._bump(composite_id, composite_version)
            self._persist(plan)
        versions = {c: v for c, (v, _) in composites.items()}
        versions[group_id] = version
        self._finish(plan, versions)
        return result.value

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
        def read() -> Snapshot | None:
            self._group(group_id)
            return self._cache.snapshots.get(group_id)

        return await self._run(read)

    # Tokens.

    async def create_token(self, token: dict[str, Any]) -> None:
        def write() -> None:
            row = dict(token, groups=_dumps(token.get("groups", [])))
            with self.db.conn:
                self.db.table("tokens").insert(row)

        await self._run(write)

    async def find_token(self, digest: str) -> dict[str, Any] | None:
        rows = await self._run(
            self._rows,
            "SELECT * FROM tokens WHERE digest = ? AND revoked_at IS NULL",
            [digest],
        )
        return _token(rows[0]) if rows else None

    async def list_tokens(self) -> list[dict[str, Any]]:
        rows = await self._run(
            self._rows,
            "SELECT * FROM tokens WHERE revoked_at IS NULL ORDER BY created_at, id",
        )
        return [_token(row) for row in rows]

    async def revoke_token(self, token_id: str) -> bool:
        def write() -> bool:
            with self.db.conn:
                cursor = self.db.execute(
                    "UPDATE tokens SET revoked_at = ?"
                    " WHERE id = ? AND revoked_at IS NULL",
                    [now_iso(), token_id],
                )
            return bool(cursor.rowcount)

        return await self._run(write)

    async def count_tokens(self) -> int:
        rows = await self._run(
            self._rows, "SELECT COUNT(*) AS n FROM tokens WHERE revoked_at IS NULL"
        )
        return int(rows[0]["n"])

    # Certificates.

    async def add_certificate(self, group_id: str, cert: dict[str, Any]) -> None:
        def write() -> None:
            self._group(group_id)
            with self.db.conn:
                self.db.table("certificates").insert(dict(cert, group_id=group_id))

        await self._run(write)

    async def pinned_certificates(self, group_id: str) -> list[dict[str, Any]]:
        return await self._run(
            self._rows,
            "SELECT id, cert, title, fingerprint, created_at, updated_at"
            " FROM certificates WHERE group_id = ? ORDER BY created_at, id",
            [group_id],
        )

    async def delete_certificate(self, group_id: str, cert_id: str) -> bool:
        def write() -> bool:
            with self.db.conn:
                cursor = self.db.execute(
                    "DELETE FROM certificates WHERE group_id = ? AND id = ?",
                    [group_id, cert_id],
                )
            return bool(cursor.rowcount)

        return await self._run(write)

    # Nodes.

    async def upsert_node(self, group_id: str, node: dict[str, Any]) -> None:
        def write() -> None:
            rows = self._rows(
                "SELECT body FROM nodes WHERE group_id = ? AND id = ?",
                [group_id, node["id"]],
            )
            now = int(time.time())
            body = orjson.loads(rows[0]["body"]) if rows else {"created_at": now}
            body.update(node)
            body["updated_at"] = now
            with self.db.conn:
                self.db.execute(
                    "INSERT OR REPLACE INTO nodes (group_id, id, body, connected)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        group_id,
                        node["id"],
                        _dumps(body),
                        int(bool(body.get("connected"))),
                    ],
                )

        await self._run(write)

    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None:
        def write() -> None:
            with self.db.conn:
                self.db.execute(
                    "UPDATE nodes SET connected = ?,"
                    " body = json_set(body, '$.connected', json(?))"
                    " WHERE group_id = ? AND id = ?",
                    [
                        int(connected),
                        "true" if connected else "false",
                        group_id,
                        node_id,
                    ],
                )

        await self._run(write)

    def _count_connected(self, group_id: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM nodes WHERE group_id = ? AND connected = 1",
            [group_id],
        ).fetchone()
        return int(row[0])

    async def count_connected_nodes(self, group_id: str) -> int:
        return await self._run(self._count_connected, group_id)

    async def list_nodes(self, group_id: str) -> list[dict[str, Any]]:
        rows = await self._run(
            self._rows,
            "SELECT body FROM nodes WHERE group_id = ? ORDER BY id",
            [group_id],
        )
        return [orjson.loads(row["body"]) for row in rows]

    async def delete_node(self, group_id: str, node_id: str) -> bool:
        def write() -> bool:
            with self.db.conn:
                cursor = self.db.execute(
                    "DELETE FROM nodes WHERE group_id = ? AND id = ?",
                    [group_id, node_id],
                )
            return bool(cursor.rowcount)

        return await self._run(write)


def _token(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row, groups=orjson.loads(row["groups"]))


def conflicts_from_json(items: list[dict[str, Any]]) -> tuple[Conflict, ...]:
    """Rebuild conflicts persisted by :meth:`SqliteStore._persist`."""
    return tuple(
        Conflict(
            i["cluster_id"],
            i["description"],
            i["resource"]["id"],
            i["resource"]["type"],
        )
        for i in items
    )
