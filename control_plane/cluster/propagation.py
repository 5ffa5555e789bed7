"""Measure how long a config version takes from commit to a node applying it."""

from __future__ import annotations

import time
from collections import OrderedDict

from control_plane.hub import SnapshotHub
from shared.snapshot import Snapshot

# Versions remembered per group; a node further behind reports no lag.
_KEPT = 64


class PropagationClock:
    """Remember when each recent version of a group was published."""

    def __init__(self, hub: SnapshotHub) -> None:
        self._hub = hub
        self._published: dict[str, OrderedDict[int, float]] = {}

    def seen(self, snapshot: Snapshot) -> None:
        """Note a version a connection is about to push, once per version."""
        versions = self._published.setdefault(snapshot.group_id, OrderedDict())
        if snapshot.version in versions:
            return
        # The hub knows when its current snapshot was published, right after
        # the commit; an older one was published no later than now.
        published = None
        if self._hub.current(snapshot.group_id) is snapshot:
            published = self._hub.published_at(snapshot.group_id)
        versions[snapshot.version] = time.time() if published is None else published
        while len(versions) > _KEPT:
            versions.popitem(last=False)

    def lag_ms(self, group_id: str, version: int) -> float | None:
        """Return the milliseconds since `version` was published, if known."""
        versions = self._published.get(group_id)
        published = None if versions is None else versions.get(version)
        if published is None:
            return None
        return max(0.0, time.time() - published) * 1000.0

    def forget(self, group_id: str) -> None:
        """Drop a group's versions, e.g. when its last node has gone."""
        self._published.pop(group_id, None)
