"""Apply a delta frame to the config a process serves."""

from __future__ import annotations

from data_plane.router import prepare
from data_plane.runtime.switch import ASIDE_ENTITIES, aside
from shared.delta import apply_delta, digest_after, entity_count
from shared.errors import ProtocolError
from shared.messages import DeltaMessage
from shared.snapshot import Snapshot, make_snapshot


async def patched_aside(current: Snapshot, message: DeltaMessage) -> Snapshot:
    """Return :func:`patched`, worked out aside when the config is large."""
    if entity_count(current.config) > ASIDE_ENTITIES:
        return await aside(patched, current, message)
    return patched(current, message)


def patched(current: Snapshot, message: DeltaMessage) -> Snapshot:
    """Return the snapshot `message` makes of `current`, its hash verified.

    Raises ProtocolError when the delta does not start from `current` or
    its result does not hash like the sender's config: a process serves
    the config it was sent or none, never a guess. The routes the delta
    brings are filed ahead for the router (see :func:`prepare`), for a
    caller that runs this in a worker thread.
    """
    if (current.version, current.hash) != (message.base_version, message.base_hash):
        raise ProtocolError(
            f"delta from version {message.base_version} cannot apply to "
            f"version {current.version}"
        )
    delta = message.to_delta()
    config = apply_delta(current.config, delta)
    digest = None
    if current.digest is not None:
        digest = digest_after(current.digest, current.config, delta)
    snapshot = make_snapshot(message.group_id, message.version, config, digest)
    if snapshot.hash != message.hash:
        raise ProtocolError("the config after the delta does not match its hash")
    prepare(delta.upserts.get("routes") or ())
    return snapshot
