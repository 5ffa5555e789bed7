"""Keep the last config a node applied on disk, and read it back at start.

After every config it applies from its control plane, a node writes it to
``<prefix>/config.cache``: a config frame as the control plane sends one (a
JSON header naming the runtime group, the version and the hash, then the
compressed config). The file is written under a temporary name, flushed to
disk with fsync and renamed over the previous one, so that a crash leaves
either the old file or the new one, never a mix of both.

A node that starts while its control plane is unreachable serves this file.
A file that does not decode, whose config does not match its hash, or that
belongs to another runtime group is refused and never served. The file holds
credentials (key-auth keys in clear), so it is readable by its owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from data_plane.runtime.switch import aside
from shared.errors import PorticoError
from shared.messages import MAX_FRAME_SIZE, ConfigMessage, encode_config
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

CACHE_FILE = "config.cache"


class CacheError(PorticoError):
    """Raised when a cache file cannot be served; the message says why."""


def read_cache(path: Path, group_id: str, max_size: int = MAX_FRAME_SIZE) -> Snapshot:
    """Return the snapshot kept in `path` for `group_id`; CacheError if unfit."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1)
    except OSError as exc:
        raise CacheError(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > max_size:
        raise CacheError(f"it is larger than {max_size} bytes")
    try:
        message = ConfigMessage.parse(data)
    except PorticoError as exc:
        raise CacheError(f"it is not a config file: {exc}") from None
    if message.group_id != group_id:
        raise CacheError(
            f"it belongs to runtime group {message.group_id}, not {group_id}"
        )
    try:
        # Inflating checks the size, and the canonical hash of the config
        # must equal the one in the header.
        return message.to_snapshot()
    except PorticoError as exc:
        raise CacheError(f"it is corrupt: {exc}") from None


def write_cache(path: Path, snapshot: Snapshot) -> None:
    """Write `snapshot` to `path` atomically: temporary file, fsync, rename."""
    # Level 1: a local file, written beside the proxy, wants speed first.
    data = encode_config(snapshot, level=1)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename itself is durable only once the directory is.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ConfigCache:
    """Persist the configs a node applies, newest only, off the event loop.

    :meth:`keep` returns at once; a writer task writes the newest snapshot
    handed to it, so that a burst of configs costs one write per snapshot
    still pending when the previous write ends.
    """

    def __init__(self, prefix: Path, group_id: str) -> None:
        self.path = prefix / CACHE_FILE
        self.group_id = group_id
        self._pending: Snapshot | None = None
        self._writer: asyncio.Task[None] | None = None
        self._failing = False

    def load(self) -> Snapshot | None:
        """Return the cached snapshot, or None (with a warning if refused)."""
        if not self.path.exists():
            return None
        try:
            snapshot = read_cache(self.path, self.group_id)
        except CacheError as exc:
            logger.warning("refusing cached config %s: %s", self.path, exc)
            return None
        logger.info(
            "loaded cached config: group %s version %d hash %s",
            snapshot.group_id,
            snapshot.version,
            snapshot.hash,
        )
        return snapshot

    def keep(self, snapshot: Snapshot) -> None:
        """Schedule `snapshot` to be written; a newer one replaces it."""
        self._pending = snapshot
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def flush(self) -> None:
        """Wait until every snapshot handed to :meth:`keep` is on disk."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        while self._pending is not None:
            snapshot, self._pending = self._pending, None
            try:
                # Beside the proxy: aside() gets the GIL back to it often.
                await aside(write_cache, self.path, snapshot)
            except OSError as exc:
                # Serving goes on; only a restart without a control plane
                # would miss this version. Warn once per run of failures.
                if not self._failing:
                    logger.warning(
                        "cannot write cached config %s: %s",
                        self.path,
                        exc.strerror or exc,
                    )
                self._failing = True
            else:
                self._failing = False
                logger.debug("cached config version %d", snapshot.version)
