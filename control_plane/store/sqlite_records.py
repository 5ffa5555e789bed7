"""Tokens, pinned certificates and node rows in SQLite.

These records do not touch configs or snapshots; each call is a single
statement or a short transaction on the store's worker thread.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from control_plane.config_cache import now_iso
from control_plane.store.sqlite_worker import SqliteWorker
from control_plane.store.sqlite_worker import dumps as _dumps


class SqliteRecords(SqliteWorker):
    """Keep admin tokens, client certificates and data plane node status."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # Node rows waiting to be written, and the task that writes them.
        self._node_batch: dict[tuple[str, str], dict[str, Any]] = {}
        self._node_flush: asyncio.Future[None] | None = None

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
        # Many nodes answer one push at once: their rows are written together,
        # one transaction per batch, so that admin calls queued behind them on
        # the worker thread wait for one commit instead of a thousand.
        batch = self._node_batch
        start = not batch
        batch.setdefault((group_id, str(node["id"])), {}).update(node)
        flush = self._node_flush
        if start or flush is None:
            flush = self._node_flush = asyncio.ensure_future(self._flush_nodes())
        await asyncio.shield(flush)

    async def _flush_nodes(self) -> None:
        await asyncio.sleep(0)  # let the rest of this burst join the batch
        batch, self._node_batch = self._node_batch, {}

        def write() -> None:
            now = int(time.time())
            with self.db.conn:
                for (group_id, node_id), node in batch.items():
                    rows = self._rows(
                        "SELECT body FROM nodes WHERE group_id = ? AND id = ?",
                        [group_id, node_id],
                    )
                    body = (
                        orjson.loads(rows[0]["body"]) if rows else {"created_at": now}
                    )
                    body.update(node)
                    body["updated_at"] = now
                    self.db.execute(
                        "INSERT OR REPLACE INTO nodes (group_id, id, body, connected)"
                        " VALUES (?, ?, ?, ?)",
                        [
                            group_id,
                            node_id,
                            _dumps(body),
                            int(bool(body.get("connected"))),
                        ],
                    )

        await self._run(write)

    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None:
        pending = self._node_batch.get((group_id, node_id))
        flush = self._node_flush
        if pending is not None and flush is not None:
            # The row is about to be written: write it with this state.
            pending["connected"] = connected
            await asyncio.shield(flush)
            return

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
        # A row still waiting to be written must not come back after this.
        self._node_batch.pop((group_id, node_id), None)

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
