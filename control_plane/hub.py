"""Hand the newest snapshot of each runtime group to whoever serves it.

The admin API publishes a snapshot after every commit that changes a group's
configuration; each data plane connection waits for a version it has not sent
yet. Waiting returns the newest snapshot only, so a burst of commits becomes a
single push per connection. The hub also keeps a bounded log of the changes
between recent versions (:mod:`control_plane.changelog`), from which a node
that runs one of them is sent a delta.

All methods must be called from the event loop thread.
"""

from __future__ import annotations

import asyncio
import time

from control_plane.changelog import Change, ChangeLog
from shared.delta import Delta
from shared.snapshot import Snapshot


class SnapshotHub:
    """Keep the current snapshot per runtime group and wake its watchers."""

    def __init__(self, changes: ChangeLog | None = None) -> None:
        self._changes = ChangeLog() if changes is None else changes
        self._current: dict[str, Snapshot] = {}
        self._held: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._published_at: dict[str, float] = {}

    def publish(self, snapshot: Snapshot, change: Change | None = None) -> None:
        """Make `snapshot` the one served to the group's data plane nodes.

        `change`, when given, is the delta from the group's previous snapshot
        to this one, so that the change log need not compute it.
        """
        known = self._current.get(snapshot.group_id)
        if known is not None and known.version >= snapshot.version:
            return
        if known is not None:
            self._changes.record(known, snapshot, change)
        self._current[snapshot.group_id] = snapshot
        self._published_at[snapshot.group_id] = time.time()
        self._wake(snapshot.group_id)

    def current(self, group_id: str) -> Snapshot | None:
        """Return the snapshot the group's nodes should run, if any."""
        return self._current.get(group_id)

    def published_at(self, group_id: str) -> float | None:
        """Return when the current snapshot was published (epoch seconds).

        Publishing follows the commit immediately, so this is the start of the
        propagation lag the nodes API reports.
        """
        return self._published_at.get(group_id)

    def forget(self, group_id: str) -> None:
        """Drop a deleted group; its watchers see no further snapshot."""
        self._current.pop(group_id, None)
        self._published_at.pop(group_id, None)
        self._held.discard(group_id)
        self._changes.forget(group_id)

    def delta(self, version: int, hash_: str, target: Snapshot) -> Delta | None:
        """Return the changes from a version to `target`, if still logged."""
        return self._changes.since(version, hash_, target)

    def hold(self, group_id: str, held: bool) -> None:
        """Stop (or resume) pushes to a group, e.g. while a composite conflicts."""
        if held:
            self._held.add(group_id)
        elif group_id in self._held:
            self._held.discard(group_id)
            self._wake(group_id)

    def is_held(self, group_id: str) -> bool:
        return group_id in self._held

    async def wait_newer(self, group_id: str, version: int | None) -> Snapshot:
        """Return the group's snapshot once its version differs from `version`.

        Pushes are withheld while the group is held.
        """
        while True:
            snapshot = self._current.get(group_id)
            if (
                snapshot is not None
                and snapshot.version != version
                and group_id not in self._held
            ):
                return snapshot
            event = self._changed.setdefault(group_id, asyncio.Event())
            await event.wait()

    def _wake(self, group_id: str) -> None:
        # Replace the event so that late waiters block on a fresh one.
        event = self._changed.pop(group_id, None)
        if event is not None:
            event.set()
