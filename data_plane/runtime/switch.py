"""Hold the config the proxy runs and replace it atomically.

A request reads `Switch.current` once, when its headers are complete, and
keeps that compiled config to its end; a new config only affects requests
that start after the swap.
"""

from __future__ import annotations

import asyncio
import logging

from data_plane.runtime.compiled import CompiledConfig, compile_snapshot
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

# Configs with more entities than this are compiled in a worker thread, so
# that the event loop keeps serving requests meanwhile.
_INLINE_LIMIT = 200


def _size(snapshot: Snapshot) -> int:
    config = snapshot.config
    return sum(len(config.get(key) or ()) for key in ("routes", "plugins", "services"))


class Switch:
    """Compile snapshots and publish the newest good one to the proxy."""

    def __init__(self) -> None:
        self.current: CompiledConfig | None = None
        self._lock = asyncio.Lock()

    def snapshot(self) -> Snapshot | None:
        """Return the snapshot being served, if any."""
        current = self.current
        return current.snapshot if current is not None else None

    async def apply(self, snapshot: Snapshot) -> None:
        """Compile `snapshot` and serve it; raise PorticoError if it is bad.

        When the hash equals the one being served, only the version changes.
        """
        async with self._lock:
            current = self.current
            if current is not None and current.snapshot.hash == snapshot.hash:
                if current.snapshot.version != snapshot.version:
                    self.current = CompiledConfig(
                        snapshot, current.router, current.applied_at
                    )
                return
            if _size(snapshot) > _INLINE_LIMIT:
                compiled = await asyncio.to_thread(compile_snapshot, snapshot)
            else:
                compiled = compile_snapshot(snapshot)
            self.current = compiled
        logger.info(
            "config applied: group %s version %d hash %s",
            snapshot.group_id,
            snapshot.version,
            snapshot.hash,
        )
