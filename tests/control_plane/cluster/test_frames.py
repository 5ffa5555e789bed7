"""Config frames are encoded once per version and shared."""

from __future__ import annotations

from cluster_harness import snapshot

from control_plane.cluster.frames import ConfigFrames
from shared.messages import ConfigMessage, decode


async def test_the_same_version_gives_the_same_bytes_object() -> None:
    frames = ConfigFrames()
    first = await frames.get(snapshot("g", 1, services=500))
    second = await frames.get(snapshot("g", 1, services=500))
    assert first is second


async def test_a_new_version_replaces_the_cached_frame() -> None:
    frames = ConfigFrames()
    await frames.get(snapshot("g", 1))
    frame = await frames.get(snapshot("g", 2))
    message = decode(frame)
    assert isinstance(message, ConfigMessage)
    assert message.version == 2
