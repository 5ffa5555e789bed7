"""Serialize each config version once and share the bytes between nodes."""

from __future__ import annotations

import asyncio

from shared.messages import encode_config
from shared.snapshot import Snapshot

# Below this many entities compressing on the event loop is cheaper than a
# trip to a worker thread.
_INLINE_ENTITIES = 200


def _entity_count(snapshot: Snapshot) -> int:
    return sum(
        len(value) for value in snapshot.config.values() if isinstance(value, list)
    )


class ConfigFrames:
    """Cache the config frame of the newest version of each runtime group.

    Concurrent callers asking for the same version share one encoding; an
    older version is dropped as soon as a newer one is asked for.
    """

    def __init__(self) -> None:
        self._frames: dict[str, tuple[int, str, asyncio.Future[bytes]]] = {}

    async def get(self, snapshot: Snapshot) -> bytes:
        """Return the frame carrying `snapshot`, encoding it on first use."""
        cached = self._frames.get(snapshot.group_id)
        if cached is not None and cached[:2] == (snapshot.version, snapshot.hash):
            return await asyncio.shield(cached[2])

        if _entity_count(snapshot) < _INLINE_ENTITIES:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            future.set_result(encode_config(snapshot))
        else:
            future = asyncio.ensure_future(asyncio.to_thread(encode_config, snapshot))
        self._frames[snapshot.group_id] = (snapshot.version, snapshot.hash, future)
        try:
            return await asyncio.shield(future)
        except BaseException:
            # Let the next caller retry rather than inherit a failure.
            if self._frames.get(snapshot.group_id, (0, "", None))[2] is future:
                del self._frames[snapshot.group_id]
            raise

    def discard(self, group_id: str) -> None:
        """Forget a group's frame, e.g. when its last node has gone."""
        self._frames.pop(group_id, None)
