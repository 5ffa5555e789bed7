"""Take the counters data plane nodes report on the telemetry endpoint.

Nodes dial ``wss://<telemetry listen>/tp/<group id>/v1/telemetry`` with the
same pinned client certificate as on the cluster endpoint and send
telemetry frames. The control plane keeps the latest report of each node in
memory, where the nodes API reads it; nothing flows back to the node.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from control_plane.cluster.certificates import PinnedCertificates, peer_fingerprint
from control_plane.settings import Listen
from shared.errors import ProtocolError
from shared.messages import Telemetry, decode

logger = logging.getLogger(__name__)

TELEMETRY_PATH = re.compile(r"/tp/([A-Za-z0-9._-]{1,128})/v1/telemetry")
# Reports are small; a larger frame is a misbehaving node.
MAX_REPORT_SIZE = 64 * 1024
# Reports kept per group; the least recently reporting nodes go first.
MAX_NODES_PER_GROUP = 10_000


@dataclass(frozen=True)
class Report:
    """Hold the latest counters of one node and when they arrived."""

    node_id: str
    counters: Mapping[str, int]
    received_at: float


class TelemetryListener:
    """Serve the telemetry endpoint of every runtime group."""

    def __init__(
        self,
        *,
        certificates: PinnedCertificates,
        listen: Listen,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
    ) -> None:
        self._certificates = certificates
        self._listen = listen
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._reports: dict[str, dict[str, Report]] = {}
        self._server: Server | None = None
        # Open connections: runtime group, certificate fingerprint, admission.
        self._peers: dict[ServerConnection, tuple[str, str | None, float]] = {}

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the telemetry listener is bound to."""
        assert self._server is not None, "listener not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def reports(self, group_id: str) -> dict[str, Report]:
        """Return the latest report of each node of a group, by node id."""
        return dict(self._reports.get(group_id, {}))

    def report(self, group_id: str, node_id: str) -> Report | None:
        """Return the latest report of one node, if it sent any."""
        return self._reports.get(group_id, {}).get(node_id)

    def _keep(self, group_id: str, report: Report) -> None:
        group = self._reports.setdefault(group_id, {})
        group.pop(report.node_id, None)
        group[report.node_id] = report
        # Node ids are the nodes' own word: bound what a group can make us keep.
        while len(group) > MAX_NODES_PER_GROUP:
            del group[next(iter(group))]

    async def start(self) -> None:
        """Bind the listener and start serving."""
        self._server = await serve(
            self._serve,
            self._listen.host,
            self._listen.port,
            ssl=self._certificates.context,
            process_request=_check_path,
            compression=None,
            max_size=MAX_REPORT_SIZE,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
        )
        logger.info("telemetry listener up on %s:%d", *self.address)

    async def close_unpinned(self, since: float) -> None:
        """Close connections whose certificate is no longer pinned to their group.

        Connections admitted at or after `since` (when the pins were read)
        may use a newer pin and are left alone.
        """
        for connection, (group_id, digest, admitted) in list(self._peers.items()):
            if admitted >= since or self._certificates.pinned_to(group_id, digest):
                continue
            logger.warning(
                "closing telemetry peer %s: its certificate is no longer pinned "
                "to runtime group %s",
                connection.remote_address,
                group_id,
            )
            self._peers.pop(connection, None)
            await connection.close(
                CloseCode.POLICY_VIOLATION,
                "client certificate is no longer pinned to this runtime group",
            )

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, connection: ServerConnection) -> None:
        """Read one node's reports until it goes away; nothing is sent back."""
        assert connection.request is not None, "the handshake is over"
        match = TELEMETRY_PATH.fullmatch(connection.request.path.partition("?")[0])
        assert match is not None, "process_request lets only telemetry paths through"
        group_id = match.group(1)

        digest = peer_fingerprint(connection)
        if not await self._certificates.is_pinned(group_id, digest):
            logger.warning(
                "refused telemetry peer %s on runtime group %s: client "
                "certificate %s is not pinned to it",
                connection.remote_address,
                group_id,
                digest or "(none)",
            )
            await connection.close(
                CloseCode.POLICY_VIOLATION,
                "client certificate is not pinned to this runtime group",
            )
            return

        self._peers[connection] = (group_id, digest, time.monotonic())
        try:
            async for frame in connection:
                message = decode(frame, max_size=MAX_REPORT_SIZE)
                if not isinstance(message, Telemetry):
                    raise ProtocolError(f"unexpected {message.TYPE} message")
                self._keep(
                    group_id,
                    Report(message.node_id, dict(message.counters), time.time()),
                )
                logger.debug("telemetry from node %s", message.node_id)
        except ProtocolError as exc:
            logger.warning(
                "telemetry peer %s broke the protocol: %s",
                connection.remote_address,
                exc,
            )
            await connection.close(CloseCode.PROTOCOL_ERROR, str(exc)[:120])
        except ConnectionClosed:
            pass
        finally:
            self._peers.pop(connection, None)


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    if TELEMETRY_PATH.fullmatch(request.path.partition("?")[0]):
        return None
    return connection.respond(404, "no such endpoint\n")
