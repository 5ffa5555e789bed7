"""Serve one admitted data plane node: push configs, take its reports.

The listener admits a node (certificate, group, hello) and then hands the
connection to a :class:`NodeSession`, which runs until the connection ends.

A push is a delta from the version the node runs when the hub's change log
reaches back to it and the node supports deltas, else the full config. A
node that cannot apply a delta answers resync, and gets the full config.

One push is in flight per node: the next version goes out once the node has
answered the previous one (applied, error or resync), so the control plane
always knows what the node runs, and a node that reads slowly holds at most one
frame in the control plane's buffers. An answer that does not match the push
in flight (a replayed, invented or out-of-order version) is a protocol error,
and so is any frame other than an answer. A node that does not answer in
time is disconnected; one too slow to read its config is disconnected by the
keepalive, whose pings wait behind the config in the same stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
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
from shared.messages import DELTA, Applied, ApplyError, Resync, decode
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

# Sessions that may prepare and send a config frame in the same turn.
PUSHES_AT_ONCE = 32


class ClusterStore(CertificateStore, Protocol):
    """The store methods the cluster listener uses."""

    async def get_group(self, group_id: str) -> dict[str, Any] | None: ...

    async def composites_of(self, group_id: str) -> list[str]: ...

    async def upsert_node(self, group_id: str, node: dict[str, Any]) -> None: ...

    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None: ...


def closed_by_us(exc: ConnectionClosed) -> str | None:
    """Return why we closed a connection on a peer's fault, or None."""
    sent = exc.sent
    # rcvd_then_sent is true when the peer closed first and we echoed.
    if sent is None or exc.rcvd_then_sent:
        return None
    if sent.code in (
        CloseCode.PROTOCOL_ERROR,
        CloseCode.INVALID_DATA,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.INTERNAL_ERROR,
    ):
        return f"{sent.reason or 'no reason'} ({sent.code})"
    return None


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
    # How long a node may take to answer a config it was sent.
    answer_timeout: float = 300.0
    gate: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(PUSHES_AT_ONCE)
    )

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
        # The (version, hash) pushed and not answered yet, and whether it
        # went as a delta; the writer waits for the reader to clear it.
        self._pending: tuple[int, str] | None = None
        self._pending_delta = False
        self._answered = asyncio.Event()
        # Set when the node asks for the full config after a delta.
        self._full = False

    async def run(self) -> None:
        """Serve the node until the connection ends, then close it.

        Two tasks run: the reader takes the node's answers (applied, error,
        resync), the writer pushes config versions and waits for each answer.
        When either ends, for whatever reason, the other is cancelled and the
        connection is closed with a code saying why.
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
            if not isinstance(message, Applied | ApplyError | Resync):
                raise ProtocolError(f"unexpected {message.TYPE} message")
            if isinstance(message, Resync) and not self._pending_delta:
                raise ProtocolError("resync answers a delta, not a full config")
            self._answer(message.TYPE, message.version, message.hash)
            if isinstance(message, Resync):
                self._full = True
                logger.info(
                    "node %s asked for the full config of runtime group %s: %s",
                    node.id,
                    group_id,
                    message.reason,
                )
            elif isinstance(message, Applied):
                node.applied(message, services.clock.lag_ms(group_id, message.version))
                logger.debug(
                    "node %s applied version %d of runtime group %s",
                    node.id,
                    message.version,
                    group_id,
                )
            else:
                node.failed(message)
                logger.warning(
                    "node %s failed to apply version %d of runtime group %s: %s",
                    node.id,
                    message.version,
                    group_id,
                    node.error,
                )
            await services.save(group_id, node)

    def _answer(self, kind: str, version: int, hash_: str) -> None:
        """Take an answer to the push in flight; ProtocolError if it is not one."""
        pending = self._pending
        if pending is None:
            raise ProtocolError(f"{kind} for version {version}, which was not pushed")
        if (version, hash_) != pending:
            raise ProtocolError(
                f"{kind} for version {version} while version {pending[0]} awaits "
                "an answer"
            )
        self._pending = None
        self._answered.set()

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
                await services.save(group_id, node)
                continue

            # A change reaches every node of a group at once: at most a few
            # sessions prepare and send their frame in one turn of the event
            # loop, so that admin requests and node answers get turns too.
            async with services.gate:
                frame, is_delta = await self._frame(snapshot)
                if len(frame) > services.max_frame_size:
                    # Kong's "payload too big": the node could not take it.
                    node.error = (
                        f"version {snapshot.version}: config frame of {len(frame)} "
                        f"bytes exceeds the cluster's maximum payload of "
                        f"{services.max_frame_size} bytes"
                    )
                    logger.warning(
                        "not pushing version %d of runtime group %s to node %s: %s",
                        snapshot.version,
                        group_id,
                        node.id,
                        node.error,
                    )
                    await services.save(group_id, node)
                    continue

                await self._push(snapshot, frame, is_delta)
                await services.save(group_id, node)
            await self._wait_answer(snapshot.version)
            if self._full:
                sent = None

    async def _frame(self, snapshot: Snapshot) -> tuple[bytes, bool]:
        """Return the frame taking the node to `snapshot`, and if it is a delta."""
        services, node = self._services, self._node
        base_version, base_hash = node.config_version, node.config_hash
        if (
            not self._full
            and DELTA in node.capabilities
            and base_version is not None
            and base_hash is not None
        ):
            base = (base_version, base_hash)
            # Nodes at the same version share the frame: the delta is
            # looked up once.
            frame = services.frames.cached_delta(base, snapshot)
            if frame is not None:
                return frame, True
            delta = services.hub.delta(base_version, base_hash, snapshot)
            if delta is not None:
                return await services.frames.delta(base, snapshot, delta), True
        self._full = False
        return await services.frames.get(snapshot), False

    async def _push(self, snapshot: Snapshot, frame: bytes, is_delta: bool) -> None:
        """Send one config frame and note it as the push in flight."""
        node = self._node
        self._pending = (snapshot.version, snapshot.hash)
        self._pending_delta = is_delta
        self._answered.clear()
        # Over TLS this returns once the frame is buffered: asyncio's TLS
        # transport applies no backpressure from the socket.
        await self._connection.send(frame)
        logger.debug(
            "pushed version %d of runtime group %s to node %s (%s, %d bytes)",
            snapshot.version,
            self._group_id,
            node.id,
            "delta" if is_delta else "config",
            len(frame),
        )

    async def _wait_answer(self, version: int) -> None:
        """Wait for the node to answer the push in flight, bounded in time."""
        services = self._services
        deadline = time.monotonic() + services.answer_timeout
        while not self._answered.is_set():
            if time.monotonic() >= deadline:
                logger.warning(
                    "closing node %s: no answer to version %d of runtime group "
                    "%s within %.0f s",
                    self._node.id,
                    version,
                    self._group_id,
                    services.answer_timeout,
                )
                raise Refused(
                    CloseCode.POLICY_VIOLATION,
                    f"no answer to config version {version} in time",
                )
            try:
                async with asyncio.timeout(services.status_interval):
                    await self._answered.wait()
            except TimeoutError:
                await self._heartbeat()

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
        if isinstance(exc, ConnectionClosed):
            # websockets itself closes a connection whose node sent a frame
            # over the size limit or stopped answering pings.
            why = closed_by_us(exc)
            if why is not None:
                logger.warning("closed node %s: %s", node.id, why)
            return CloseCode.NORMAL_CLOSURE, ""
        if exc is None:
            return CloseCode.NORMAL_CLOSURE, ""
        if isinstance(exc, Refused):
            return exc.code, exc.reason
        if isinstance(exc, ProtocolError):
            logger.warning("node %s broke the protocol: %s", node.id, exc)
            return CloseCode.PROTOCOL_ERROR, str(exc)[:120]
        logger.error("connection of node %s failed", node.id, exc_info=exc)
        return CloseCode.INTERNAL_ERROR, "internal error"
