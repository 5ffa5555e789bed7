"""The SQLite plumbing: one worker thread, one connection, migrations.

Every statement runs on the worker thread, so writes are serialized (limits
and uniqueness checks cannot race) and the event loop stays free. The
database runs in WAL mode with `synchronous=NORMAL`: a commit survives a
crash of Portico and costs no fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlite_utils

T = TypeVar("T")

# Each script upgrades the schema by one version; never edit a released one.
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


def dumps(value: Any) -> str:
    """Return `value` as JSON text for a column."""
    return orjson.dumps(value).decode()


class SqliteWorker:
    """Own the connection and run every database call on one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="portico-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: sqlite_utils.Database | None = None

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

    def _connect(self) -> None:
        """Open the database and bring its schema up to date (worker thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite_utils.Database(sqlite3.connect(str(self.path)))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for number, script in enumerate(MIGRATIONS, start=1):
            if number > current:
                self.db.executescript(
                    f"BEGIN; {script} INSERT INTO schema_version VALUES ({number});"
                    " COMMIT;"
                )

    async def close(self) -> None:
        """Let pending calls finish, then close the connection."""
        if self._db is not None:
            await self._run(self.db.conn.close)
        self._executor.shutdown(wait=True)
