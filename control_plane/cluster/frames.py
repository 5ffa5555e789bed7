"""Serialize each config version, and each delta, once; nodes share the bytes."""

from __future__ import annotations

import asyncio

from shared.delta import Delta
from shared.messages import DeltaMessage, encode_config
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
        # Per group: the target version and hash, and the delta frames to
        # it from each base version and hash asked for.
        self._deltas: dict[str, tuple[int, str, dict[tuple[int, str], bytes]]] = {}

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

    def cached_delta(self, base: tuple[int, str], snapshot: Snapshot) -> bytes | None:
        """Return the frame from `base` to `snapshot` if one was made already."""
        cached = self._deltas.get(snapshot.group_id)
        if cached is None or cached[:2] != (snapshot.version, snapshot.hash):
            return None
        return cached[2].get(base)

    async def delta(
        self, base: tuple[int, str], snapshot: Snapshot, delta: Delta
    ) -> bytes:
        """Return the frame of `delta` from `base` (version, hash) to `snapshot`."""
        cached = self._deltas.get(snapshot.group_id)
        if cached is None or cached[:2] != (snapshot.version, snapshot.hash):
            cached = (snapshot.version, snapshot.hash, {})
            self._deltas[snapshot.group_id] = cached
        frame = cached[2].get(base)
        if frame is None:

            def encode() -> bytes:
                return DeltaMessage.from_delta(*base, snapshot, delta).serialize()

            if delta.size < _INLINE_ENTITIES:
                frame = encode()
            else:
                frame = await asyncio.to_thread(encode)
            cached[2][base] = frame
        return frame

    def discard(self, group_id: str) -> None:
        """Forget a group's frames, e.g. when its last node has gone."""
        self._frames.pop(group_id, None)
        self._deltas.pop(group_id, None)
