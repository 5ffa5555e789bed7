"""Hold the config the proxy runs and replace it atomically.

A request reads `Switch.current` once, when its headers are complete, and
keeps that compiled config to its end; a new config only affects requests
that start after the swap.

A large config is compiled on the event loop a slice at a time (a quarter
of a millisecond at most, less while requests are waiting), and the loop
serves requests between slices. A worker
thread would not do: uvloop takes the GIL for each I/O callback, and each
would wait for the compiling thread to hand it over. The config a swap
replaces is freed the same way, a slice at a time, after the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any, TypeVar

from data_plane.runtime.compiled import (
    CompiledConfig,
    compile_snapshot,
    compile_steps,
)
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

# Configs with more entities than this are compiled a slice at a time.
_INLINE_LIMIT = 200
# How long a slice of work may hold the event loop, in seconds: at most,
# and at least while requests are being served (see run_sliced).
_SLICE = 0.00025
_MIN_SLICE = 0.00005
# The loop served nothing in between two slices if it came back this soon.
_IDLE = 0.00002
# A slice's length over the time the loop just spent serving requests: the
# work then gets 40 % of a busy core.
_SHARE = 2 / 3
# Entities or routes freed per step when a replaced config is released.
_RELEASE_STEP = 64
# Work on a config frame larger than this, or on a config of more entities,
# goes aside (to a worker thread): on the event loop it would stall the proxy.
ASIDE_FRAME = 256 * 1024
ASIDE_ENTITIES = 2000
# While a worker thread reads a config, the event loop's thread gets the GIL
# back after this long at most (CPython's default is 5 ms).
_ASIDE_SWITCH_INTERVAL = 0.0005

R = TypeVar("R")


def _size(snapshot: Snapshot) -> int:
    config = snapshot.config
    kinds = ("routes", "plugins", "services")
    return sum(len(config.get(kind) or ()) for kind in kinds)


class Switch:
    """Compile snapshots and publish the newest good one to the proxy."""

    def __init__(self) -> None:
        self.current: CompiledConfig | None = None
        self._lock = asyncio.Lock()
        self._releases: set[asyncio.Task[None]] = set()

    def snapshot(self) -> Snapshot | None:
        """Return the snapshot being served, if any."""
        current = self.current
        return current.snapshot if current is not None else None

    async def apply(self, snapshot: Snapshot) -> None:
        """Compile `snapshot` and serve it; raise PorticoError if it is bad.

        When the hash equals the one being served, only the version changes.
        What did not change since the config being served is reused (see
        :func:`compile_snapshot`).
        """
        async with self._lock:
            current = self.current
            if current is not None and current.snapshot.hash == snapshot.hash:
                if current.snapshot.version != snapshot.version:
                    self.current = replace(current, snapshot=snapshot)
                return
            started = time.perf_counter()
            large = _size(snapshot) > _INLINE_LIMIT
            if large:
                with quiet_collector():
                    compiled = await run_sliced(compile_steps(snapshot, current))
            else:
                compiled = compile_snapshot(snapshot, current)
            took = time.perf_counter() - started
            compiled = replace(compiled, compile_seconds=took)
            self.current = compiled
            if large and current is not None:
                replaced, current = [current], None
                task = asyncio.get_running_loop().create_task(_release(replaced))
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)
        logger.info(
            "config applied: group %s version %d hash %s, compiled in %.1f ms",
            snapshot.group_id,
            snapshot.version,
            snapshot.hash,
            compiled.compile_seconds * 1000,
        )


async def run_sliced(steps: Generator[None, None, R]) -> R:
    """Run `steps` on the event loop a slice at a time; return its result.

    Between slices the loop handles whatever I/O is ready. While it has
    requests to serve, a slice lasts two thirds of the time the loop took
    to serve them, so that they keep 60 % of the core; an idle loop gives
    the work whole slices.
    """
    budget = _SLICE
    while True:
        end = time.perf_counter() + budget
        try:
            while time.perf_counter() < end:
                next(steps)
        except StopIteration as done:
            result: R = done.value
            return result
        paused = time.perf_counter()
        await asyncio.sleep(0)
        served = time.perf_counter() - paused
        if served < _IDLE:
            budget = _SLICE
        else:
            budget = min(_SLICE, max(_MIN_SLICE, served * _SHARE))


async def _release(replaced: list[CompiledConfig]) -> None:
    """Free the config in `replaced`, its only reference, a slice at a time."""
    with quiet_collector():
        await run_sliced(_release_steps(replaced))


def _release_steps(replaced: list[CompiledConfig]) -> Generator[None, None, None]:
    """Drop a config without freeing it all at once (tens of milliseconds).

    Every entity and every route's compiled parts get a reference from a
    list first, so that dropping the config frees only its containers; the
    list then lets go of them a few at a time. What others still refer to
    (requests in flight, the next config) stays alive as usual.
    """
    old = replaced.pop()
    pieces: list[object] = []
    for entities in old.snapshot.config.values():
        if isinstance(entities, list):
            pieces += entities
    pieces += old.routes.values()
    pieces += old.router.parts()
    yield
    del old
    yield
    while pieces:
        del pieces[-_RELEASE_STEP:]
        yield


class _Quiet:
    """How many heavy steps are running, and whether the collector ran before."""

    running = 0
    collecting = True
    interval = 0.005
    threads = 0


_quiet = _Quiet()


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """Keep the cyclic garbage collector off while a config is built or freed.

    A full collection holds the GIL from start to end, and building a large
    config allocates enough to start one. When the last of these steps ends
    well, everything alive is frozen out of future collections
    (`gc.freeze`), which would otherwise walk the whole config again and
    again; a config holds no reference cycles, so it is still freed, by
    reference counting, when it is replaced.
    """
    if not _quiet.running:
        _quiet.collecting = gc.isenabled()
        gc.disable()
    _quiet.running += 1
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        _quiet.running -= 1
        if succeeded:
            gc.freeze()
        if not _quiet.running and _quiet.collecting:
            gc.enable()


async def aside(function: Callable[..., R], *args: Any) -> R:
    """Run `function(*args)` in a worker thread, for work that cannot be sliced.

    Reading and checking a large declarative file is such work. The GIL is
    handed back to the event loop's thread every half millisecond rather
    than every 5 ms (CPython's default), so that requests arriving
    meanwhile wait less; the collector is quiet as for a compile.
    """
    if not _quiet.threads:
        _quiet.interval = sys.getswitchinterval()
        sys.setswitchinterval(min(_quiet.interval, _ASIDE_SWITCH_INTERVAL))
    _quiet.threads += 1
    try:
        with quiet_collector():
            return await asyncio.to_thread(function, *args)
    finally:
        _quiet.threads -= 1
        if not _quiet.threads:
            sys.setswitchinterval(_quiet.interval)
