"""Accept data plane nodes and push each new config version to them.

A node dials ``wss://<cluster listen>/cp/<group id>/v1/outlet`` with a client
certificate. The listener checks that the certificate is pinned to that group
and that the group is not a member of a composite, reads the node's hello,
then pushes the group's newest snapshot whenever its version differs from the
one the node runs, as a delta when it can (see :mod:`.session`). Pushes follow
every commit without delay; a burst of commits reaches a node as the newest
version only. While the group is held (a composite in conflict) nothing is
pushed and nodes keep their config.

Whatever a peer does wrong closes its connection only, with a close code, a
reason and a WARNING naming the node (or its address before the hello).
Nodes whose certificate is unpinned are closed at the next refresh of the
pinned certificates.

The listener also starts the telemetry listener, on its own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from control_plane import pki
from control_plane.cluster.certificates import PinnedCertificates, peer_fingerprint
from control_plane.cluster.frames import ConfigFrames
from control_plane.cluster.node import NodeStatus
from control_plane.cluster.propagation import PropagationClock
from control_plane.cluster.session import (
    ClusterStore,
    NodeSession,
    Refused,
    Services,
    closed_by_us,
)
from control_plane.cluster.telemetry import TelemetryListener
from control_plane.hub import SnapshotHub
from control_plane.settings import Settings
from shared.errors import ProtocolError
from shared.messages import MAX_FRAME_SIZE, Hello, decode

logger = logging.getLogger(__name__)

OUTLET_PATH = re.compile(r"/cp/([A-Za-z0-9._-]{1,128})/v1/outlet")

# How long a node may take to send its hello after the WebSocket opens.
HELLO_TIMEOUT = 10.0
# See Services for these two.
STATUS_INTERVAL = 1.0
RECHECK_INTERVAL = 30.0
# How often pinned certificates are reloaded into the TLS context, and nodes
# whose certificate is no longer pinned are disconnected. Remove the polling
# when the store signals pinned-certificate changes.
CERT_REFRESH_INTERVAL = 1.0
# How long a node may take to answer a config it was sent.
ANSWER_TIMEOUT = 300.0


def server_hostnames(settings: Settings) -> list[str]:
    """Return the names a generated server certificate should cover."""
    names = [settings.cluster_listen.host, settings.telemetry_listen.host]
    for url in (settings.cluster_public_url, settings.telemetry_public_url):
        host = urlsplit(url).hostname
        if host:
            names.append(host)
    names += ["localhost", "127.0.0.1"]
    wildcard = {"", "0.0.0.0", "::"}
    return [name for name in dict.fromkeys(names) if name not in wildcard]


class ClusterListener:
    """Serve the cluster and telemetry endpoints of every runtime group."""

    def __init__(
        self,
        *,
        store: ClusterStore,
        hub: SnapshotHub,
        settings: Settings,
        max_frame_size: int = MAX_FRAME_SIZE,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        status_interval: float = STATUS_INTERVAL,
        recheck_interval: float = RECHECK_INTERVAL,
        cert_refresh_interval: float = CERT_REFRESH_INTERVAL,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self._store = store
        self._hub = hub
        self._settings = settings
        self._max_frame_size = max_frame_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._status_interval = status_interval
        self._recheck_interval = recheck_interval
        self._cert_refresh_interval = cert_refresh_interval
        self._answer_timeout = answer_timeout

        self._frames = ConfigFrames()
        # (group id, node id) -> the connection serving that node now; and
        # per connection, when it was admitted (monotonic) with which client
        # certificate.
        self._connections: dict[tuple[str, str], ServerConnection] = {}
        self._admitted: dict[ServerConnection, tuple[float, str | None]] = {}
        self._clock = PropagationClock(hub)

        # Closing a replaced connection must not delay its successor.
        self._background: set[asyncio.Task[None]] = set()

        self._server: Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.certificates: PinnedCertificates | None = None
        self._services: Services | None = None
        self.telemetry: TelemetryListener | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the cluster listener is bound to."""
        assert self._server is not None, "listener not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def telemetry_address(self) -> tuple[str, int]:
        """Return the host and port the telemetry listener is bound to."""
        assert self.telemetry is not None, "listener not started"
        return self.telemetry.address

    async def start(self) -> None:
        """Load the server certificate, bind both listeners and start serving."""
        settings = self._settings
        if settings.cluster_cert is not None and settings.cluster_cert_key is not None:
            cert, key = settings.cluster_cert, settings.cluster_cert_key
        else:
            cert, key = pki.ensure_server_certificate(
                settings.prefix, server_hostnames(settings)
            )
        try:
            self.certificates = PinnedCertificates(self._store, cert, key)
        except OSError as exc:  # ssl.SSLError included
            reason = exc.strerror if type(exc) is OSError else str(exc)
            raise OSError(
                exc.errno,
                f"cannot load the server certificate {cert} with the key {key}: "
                f"{reason or exc} (expected PEM files)",
            ) from exc
        await self.certificates.refresh()
        self._services = Services(
            store=self._store,
            hub=self._hub,
            certificates=self.certificates,
            frames=self._frames,
            clock=self._clock,
            max_frame_size=self._max_frame_size,
            status_interval=self._status_interval,
            recheck_interval=self._recheck_interval,
            answer_timeout=self._answer_timeout,
        )

        try:
            self._server = await serve(
                self._serve,
                settings.cluster_listen.host,
                settings.cluster_listen.port,
                ssl=self.certificates.context,
                process_request=_check_path,
                compression=None,
                max_size=self._max_frame_size,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                # A node that stopped answering pings will not answer a close
                # either; the nodes API shows it gone once the close gives up.
                close_timeout=self._ping_timeout,
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {settings.cluster_listen} (cluster listener): "
                f"{_reason(exc)}",
            ) from exc
        self.telemetry = TelemetryListener(
            certificates=self.certificates,
            listen=settings.telemetry_listen,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
        )
        try:
            await self.telemetry.start()
        except OSError as exc:
            self._server.close()
            await self._server.wait_closed()
            raise OSError(
                exc.errno,
                f"cannot listen on {settings.telemetry_listen} (telemetry listener): "
                f"{_reason(exc)}",
            ) from exc
        self._refresher = asyncio.create_task(self._refresh_certificates())
        logger.info("cluster listener up on %s:%d", *self.address)

    async def close(self) -> None:
        """Stop accepting, close every node connection and wait for them."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.telemetry is not None:
            await self.telemetry.close()
        if self._server is not None:
            # Nodes see 1001 (going away) and reconnect to the next control
            # plane process; they keep serving their config meanwhile.
            self._server.close()
            await self._server.wait_closed()
            logger.info("cluster listener closed")

    async def refresh_certificates(self) -> None:
        """Apply pin changes now rather than at the next poll.

        Newly pinned certificates are trusted, and nodes whose certificate
        is no longer pinned to their group are disconnected.
        """
        assert self.certificates is not None, "listener not started"
        started = time.monotonic()
        await self.certificates.refresh()
        self._close_unpinned(started)
        if self.telemetry is not None:
            await self.telemetry.close_unpinned(started)

    async def _refresh_certificates(self) -> None:
        while True:
            await asyncio.sleep(self._cert_refresh_interval)
            try:
                await self.refresh_certificates()
            except Exception:
                logger.exception("cannot reload pinned client certificates")

    def _close_unpinned(self, since: float) -> None:
        """Close nodes admitted before `since` whose certificate is unpinned."""
        assert self.certificates is not None, "listener not started"
        for (group_id, node_id), connection in list(self._connections.items()):
            admitted_at, digest = self._admitted.get(connection, (since, None))
            # A node admitted after the pins were read may use a new pin.
            if admitted_at >= since or self.certificates.pinned_to(group_id, digest):
                continue
            logger.warning(
                "closing node %s: its certificate is no longer pinned to "
                "runtime group %s",
                node_id,
                group_id,
            )
            del self._admitted[connection]
            self._close_soon(
                connection,
                CloseCode.POLICY_VIOLATION,
                "client certificate is no longer pinned to this runtime group",
            )

    def _close_soon(
        self, connection: ServerConnection, code: CloseCode, reason: str
    ) -> None:
        task = asyncio.create_task(connection.close(code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # One connection.

    async def _serve(self, connection: ServerConnection) -> None:
        """Serve one data plane node until it or the control plane goes away.

        The node is admitted (pinned certificate, group, hello), then a
        :class:`NodeSession` runs its reader and writer until either ends.
        """
        services = self._services
        assert services is not None, "listener not started"
        group_id = _group_of(connection)
        try:
            node = await self._admit(services, connection, group_id)
        except Refused as refusal:
            await connection.close(refusal.code, refusal.reason)
            return
        except ConnectionClosed as exc:
            why = closed_by_us(exc)
            if why is not None:
                logger.warning(
                    "closed peer %s on runtime group %s before its hello: %s",
                    connection.remote_address,
                    group_id,
                    why,
                )
            return

        key = (group_id, node.id)
        previous = self._connections.get(key)
        self._connections[key] = connection
        self._admitted[connection] = (time.monotonic(), node.fingerprint)
        if previous is not None:
            # The node reconnected before the old connection timed out.
            self._admitted.pop(previous, None)
            self._close_soon(previous, CloseCode.POLICY_VIOLATION, "replaced")
        logger.info(
            "node %s (%s, %s) connected to runtime group %s",
            node.id,
            node.hostname,
            node.version,
            group_id,
        )

        try:
            await NodeSession(services, connection, group_id, node).run()
        finally:
            await self._forget(key, connection)

    async def _admit(
        self, services: Services, connection: ServerConnection, group_id: str
    ) -> NodeStatus:
        """Check the certificate, the group and the hello; return the node."""
        peer = connection.remote_address
        digest = peer_fingerprint(connection)
        if not await services.certificates.is_pinned(group_id, digest):
            logger.warning(
                "refused peer %s on runtime group %s: client certificate %s "
                "is not pinned to it",
                peer,
                group_id,
                digest or "(none)",
            )
            raise Refused(
                CloseCode.POLICY_VIOLATION,
                "client certificate is not pinned to this runtime group",
            )
        await self._check_not_member(group_id, peer)

        hello = await self._read_hello(connection, peer)
        node = NodeStatus(hello)
        node.fingerprint = digest
        if node.version_issue is not None:
            await services.save(group_id, node, connected=False)
            logger.warning(
                "refused node %s on runtime group %s: %s",
                node.id,
                group_id,
                node.version_issue["description"],
            )
            raise Refused(CloseCode.POLICY_VIOLATION, node.version_issue["description"])

        await services.save(group_id, node)
        # A membership change may have raced this connection: the store
        # refuses to add a group with connected nodes, so looking again
        # after saving this node as connected closes the gap.
        try:
            await self._check_not_member(group_id, peer)
        except Refused:
            await self._store.set_node_connected(group_id, node.id, False)
            raise
        return node

    async def _check_not_member(self, group_id: str, peer: Any) -> None:
        composites = await self._store.composites_of(group_id)
        if composites:
            logger.warning(
                "refused peer %s on runtime group %s: it is a member of %s",
                peer,
                group_id,
                ", ".join(composites),
            )
            raise Refused(
                CloseCode.POLICY_VIOLATION,
                f"runtime group {group_id} is a member of composite runtime "
                f"group {', '.join(composites)}; connect to the composite",
            )

    async def _read_hello(self, connection: ServerConnection, peer: Any) -> Hello:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                frame = await connection.recv()
            message = decode(frame, max_size=self._max_frame_size)
        except TimeoutError:
            logger.warning("peer %s sent no hello in %.0f s", peer, HELLO_TIMEOUT)
            raise Refused(CloseCode.POLICY_VIOLATION, "no hello in time") from None
        except ProtocolError as exc:
            logger.warning("peer %s sent a bad hello: %s", peer, exc)
            raise Refused(CloseCode.PROTOCOL_ERROR, str(exc)[:120]) from None
        if not isinstance(message, Hello):
            logger.warning("peer %s sent %s before its hello", peer, message.TYPE)
            raise Refused(CloseCode.PROTOCOL_ERROR, "the first frame must be hello")
        return message

    async def _forget(self, key: tuple[str, str], connection: ServerConnection) -> None:
        group_id, node_id = key
        self._admitted.pop(connection, None)
        if self._connections.get(key) is not connection:
            return  # a newer connection of the same node took over
        del self._connections[key]
        if not any(group == group_id for group, _ in self._connections):
            self._frames.discard(group_id)
            self._clock.forget(group_id)
        try:
            await self._store.set_node_connected(group_id, node_id, False)
        except Exception:
            logger.exception("cannot mark node %s disconnected", node_id)
        logger.info("node %s left runtime group %s", node_id, group_id)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    return exc.strerror or str(exc)


def _group_of(connection: ServerConnection) -> str:
    assert connection.request is not None, "the handshake is over"
    match = OUTLET_PATH.fullmatch(connection.request.path.partition("?")[0])
    assert match is not None, "process_request lets only outlet paths through"
    return match.group(1)


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    if OUTLET_PATH.fullmatch(request.path.partition("?")[0]):
        return None
    return connection.respond(404, "no such endpoint\n")
