"""Serve one admitted data plane node: push configs, take its reports.

The listener admits a node (certificate, group, hello) and then hands the
connection to a :class:`NodeSession`, which runs until the connection ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from control_plane.cluster.certificates import (
    CertificateStore,
    PinnedCertificates,
    peer_fingerprint,
)
from control_plane.cluster.frames import ConfigFrames
from control_plane.cluster.node import NodeStatus, plugin_issue
from control_plane.cluster.propagation import PropagationClock
from control_plane.hub import SnapshotHub
from shared.errors import ProtocolError
from shared.messages import Applied, ApplyError, decode

logger = logging.getLogger(__name__)


class ClusterStore(CertificateStore, Protocol):
    """The store methods the cluster listener uses."""

    async def get_group(self, group_id: str) -> dict[str, Any] | None: ...

    async def composites_of(self, group_id: str) -> list[str]: ...

    async def upsert_node(self, group_id: str, node: dict[str, Any]) -> None: ...

    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None: ...


class Refused(Exception):
    """Raised to end a connection whose node may not be served (any more)."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # A close frame has room for 123 bytes of reason.
        self.reason = reason.encode()[:123].decode(errors="ignore")


@dataclass(frozen=True)
class Services:
    """Hold what every session of a listener shares."""

    store: ClusterStore
    hub: SnapshotHub
    certificates: PinnedCertificates
    frames: ConfigFrames
    clock: PropagationClock
    max_frame_size: int
    # Between pushes a session re-judges its node's state this often, and
    # re-checks its certificate (and saves an unchanged state) this often.
    status_interval: float
    recheck_interval: float

    async def save(
        self, group_id: str, node: NodeStatus, *, connected: bool = True
    ) -> None:
        """Write a node's row, judged against the group's current snapshot."""
        record = node.record(
            self.hub.current(group_id),
            self.hub.is_held(group_id),
            connected=connected,
        )
        await self.store.upsert_node(group_id, record)
        node.saved_at = time.monotonic()
        node.saved_state = record["sync_state"]


class NodeSession:
    """Run the reader and the writer of one node's connection."""

    def __init__(
        self,
        services: Services,
        connection: ServerConnection,
        group_id: str,
        node: NodeStatus,
    ) -> None:
        self._services = services
        self._connection = connection
        self._group_id = group_id
        self._node = node

    async def run(self) -> None:
        """Serve the node until the connection ends, then close it.

        Two tasks run: the reader takes the node's applied and error frames,
        the writer pushes config versions. When either ends, for whatever
        reason, the other is cancelled and the connection is closed with a
        code saying why.
        """
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        code, reason = CloseCode.NORMAL_CLOSURE, ""
        try:
            done, _ = await asyncio.wait(
                {reader, writer}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                code, reason = self._report_end(task)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await self._connection.close(code, reason)

    async def _read(self) -> None:
        """Take the node's frames until the connection closes."""
        services, group_id, node = self._services, self._group_id, self._node
        async for frame in self._connection:
            message = decode(frame, max_size=services.max_frame_size)
            node.last_ping = time.time()
            if isinstance(message, Applied):
                node.applied(message, services.clock.lag_ms(group_id, message.version))
                logger.debug(
                    "node %s applied version %d of runtime group %s",
                    node.id,
                    message.version,
                    group_id,
                )
            elif isinstance(message, ApplyError):
                node.failed(message)
                logger.warning(
                    "node %s failed to apply version %d of runtime group %s: %s",
                    node.id,
                    message.version,
                    group_id,
                    node.error,
                )
            else:
                raise ProtocolError(f"unexpected {message.TYPE} message")
            await services.save(group_id, node)

    async def _write(self) -> None:
        """Push every version that differs from the node's, newest only."""
        services, group_id, node = self._services, self._group_id, self._node
        hub = services.hub
        sent = node.config_version
        current = hub.current(group_id)
        if current is not None and current.version == sent and not node.runs(current):
            # Same version number but other content: the node ran another
            # group, or a control plane whose database was reset.
            sent = None

        while True:
            try:
                async with asyncio.timeout(services.status_interval):
                    snapshot = await hub.wait_newer(group_id, sent)
            except TimeoutError:
                await self._heartbeat()
                continue
            sent = snapshot.version
            services.clock.seen(snapshot)

            node.plugin_issue = plugin_issue(node.plugins, snapshot)
            if node.plugin_issue is not None:
                logger.warning(
                    "not pushing version %d of runtime group %s to node %s: %s",
                    snapshot.version,
                    group_id,
                    node.id,
                    node.plugin_issue["description"],
                )
            else:
                frame = await services.frames.get(snapshot)
                await self._connection.send(frame)
                logger.debug(
                    "pushed version %d of runtime group %s to node %s (%d bytes)",
                    snapshot.version,
                    group_id,
                    node.id,
                    len(frame),
                )
            await services.save(group_id, node)

    async def _heartbeat(self) -> None:
        services, group_id, node = self._services, self._group_id, self._node
        # websockets pings the node and closes the connection when the pongs
        # stop, so a connection still open here has a live node.
        node.last_ping = time.time()
        state = node.sync_state(
            services.hub.current(group_id), services.hub.is_held(group_id)
        )
        stale = time.monotonic() - node.saved_at > services.recheck_interval
        if stale:
            # An unpinned certificate, or a deleted group, ends the session
            # too, not only the next handshake.
            digest = peer_fingerprint(self._connection)
            if not await services.certificates.is_pinned(group_id, digest):
                logger.warning(
                    "closing node %s: its certificate is no longer pinned to "
                    "runtime group %s",
                    node.id,
                    group_id,
                )
                raise Refused(
                    CloseCode.POLICY_VIOLATION,
                    "client certificate is no longer pinned to this runtime group",
                )
        if stale or state != node.saved_state:
            await services.save(group_id, node)

    def _report_end(self, task: asyncio.Task[None]) -> tuple[CloseCode, str]:
        """Log why a reader or writer ended; return the close code to send."""
        node, exc = self._node, task.exception()
        if exc is None or isinstance(exc, ConnectionClosed):
            return CloseCode.NORMAL_CLOSURE, ""
        if isinstance(exc, Refused):
            return exc.code, exc.reason
        if isinstance(exc, ProtocolError):
            logger.warning("node %s broke the protocol: %s", node.id, exc)
            return CloseCode.PROTOCOL_ERROR, str(exc)[:120]
        logger.error("connection of node %s failed", node.id, exc_info=exc)
        return CloseCode.INTERNAL_ERROR, "internal error"
