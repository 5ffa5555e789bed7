"""Accept client connections and parse their HTTP/1.1 requests.

Each :class:`ClientConnection` parses with httptools and turns every request
into an :class:`~data_plane.proxy.exchange.Exchange`. Pipelined requests
wait in a queue and become active one at a time, so responses go out in
request order. Nothing on this path creates a coroutine, except opening a
new upstream connection.

Malformed input is answered with 400 and the connection is closed; a head
over the size limits gets 494 (Kong's "Request header or cookie too large").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Final, cast

import httptools

from data_plane.plugins.base import LocalResponse
from data_plane.proxy import responses
from data_plane.proxy.exchange import Exchange
from data_plane.proxy.upstream import UpstreamPool
from data_plane.runtime.switch import Switch

logger = logging.getLogger(__name__)

HEAD_LIMIT: Final = 32 * 1024  # request line and headers, in total
LINE_LIMIT: Final = 8 * 1024  # one header line or the URL, like nginx's buffers
QUEUE_LIMIT: Final = 32  # pipelined requests parsed ahead of the active one
LINGER: Final = 5.0  # seconds a refused client may go on sending before the close

# Method names as parsed -> as str, so the usual ones are not decoded again.
_METHODS: Final = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}


class _TooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized head."""


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests and runs their exchanges."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        self.ip = b""
        # X-Forwarded-Proto, -Port and X-Real-IP, the same for every request.
        self.forwarded = b"\r\n"
        self.last_active = 0.0

        # Parsing state of the request being read.
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        # (lowercase name, name, value) as received, in order.
        self._headers: list[tuple[bytes, bytes, bytes]] = []
        # Lowercase name -> value, both decoded; the last of a repeated header.
        self._header_map: dict[str, str] = {}
        self._head_size = 0
        self._in_head = True
        self._parsing: Exchange | None = None

        # Exchanges: the one answering now and the pipelined ones after it.
        self.active: Exchange | None = None
        self._queue: deque[Exchange] = deque()

        # Lifecycle and flow control.
        self.closing = False  # close once the active exchange is done
        self.gone = False  # the transport is closed
        self._rejected: LocalResponse | None = None
        self.paused: set[str] = set()  # why reading is paused; empty: it is not
        self.write_paused = False  # the client's transport buffer is full
        self._linger: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer_ip = str(peer[0]) if peer else ""
        self.ip = self.peer_ip.encode()
        port = str(local[1]).encode() if local else b""
        self.forwarded = (
            b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: %s\r\nX-Real-IP: %s\r\n"
            % (port, self.ip)
        )
        self.server.connections.add(self)
        self.server.accepted += 1
        self.last_active = self.loop.time()
        if self.server.draining:
            self.closing = True

    def data_received(self, data: bytes) -> None:
        if self.gone or self._rejected is not None:
            return
        self.last_active = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Portico does not tunnel upgraded protocols: answer, then close.
            self.closing = True
            self.pause_reading("upgrade", True)
            return
        except httptools.HttpParserError as exc:
            too_large = isinstance(exc.__context__, _TooLarge)
            self._reject(responses.TOO_LARGE if too_large else responses.BAD_REQUEST)
            return
        if self._in_head:
            self._head_size += len(data)
            if self._head_size > HEAD_LIMIT:
                self._reject(responses.TOO_LARGE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self._linger is not None:
            self._linger.cancel()
        self.server.forget(self)
        if self.active is not None:
            self.active.abandon()
        for queued in self._queue:
            queued.abandon()
        self._queue.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        active = self.active
        if active is not None and active.conn is not None:
            active.conn.pause_reading(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        active = self.active
        if active is not None and active.conn is not None:
            active.conn.pause_reading(False)

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > LINE_LIMIT:
            raise _TooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._head_size += size + 4
        if size > LINE_LIMIT or self._head_size > HEAD_LIMIT:
            raise _TooLarge
        lowered = name.lower()
        self._headers.append((lowered, name, value))
        self._header_map[lowered.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        exchange = Exchange(
            self,
            _METHODS.get(method) or method.decode("ascii", "replace"),
            self._url,
            self._headers,
            self._header_map,
            parser.get_http_version() == "1.1",
            parser.should_keep_alive() and not self.closing,
            self.loop.time(),
        )
        # Ready for the next request's head (httptools then calls on_url).
        self._url = b""
        self._headers = []
        self._header_map = {}
        self._head_size = 0
        self._in_head = False
        self._parsing = exchange
        if self.active is None:
            self.active = exchange
            self._begin(exchange)
        else:
            self._queue.append(exchange)
            if len(self._queue) >= QUEUE_LIMIT:
                self.pause_reading("pipeline", True)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.body(body)

    def on_message_complete(self) -> None:
        exchange, self._parsing = self._parsing, None
        self._in_head = True
        if exchange is not None:
            exchange.end()

    # Used by exchanges

    def write(self, data: bytes) -> None:
        """Send bytes to the client, unless it is gone."""
        if self.transport is not None and not self.gone:
            self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        """Send several pieces to the client in one call."""
        if self.transport is not None and not self.gone:
            self.transport.writelines(data)

    def abort(self) -> None:
        """Drop the connection at once (a response cannot be completed)."""
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self, reason: str, paused: bool) -> None:
        """Pause reading while any reason holds; resume when none does."""
        transport = self.transport
        if transport is None or self.gone:
            return
        if paused:
            if not self.paused:
                transport.pause_reading()
            self.paused.add(reason)
        elif reason in self.paused:
            self.paused.discard(reason)
            if not self.paused:
                transport.resume_reading()

    def finished(self, exchange: Exchange, close: bool) -> None:
        """Move on to the next pipelined request, or close."""
        if exchange is not self.active:
            return  # finished twice (answered early, body ended later)
        self.active = None
        if close or self.closing:
            self._close()
            return
        if self._queue:
            following = self._queue.popleft()
            self.active = following
            if len(self._queue) < QUEUE_LIMIT:
                self.pause_reading("pipeline", False)
            self._begin(following)
        elif self._rejected is not None:
            self._send_rejection()

    def shutdown(self) -> None:
        """Close once the current exchange is done (now if there is none)."""
        self.closing = True
        if self.active is None and not self._queue:
            self._close()

    # Internals

    def _begin(self, exchange: Exchange) -> None:
        if exchange.http_11 and "host" not in exchange.header_map:
            exchange.respond(responses.BAD_REQUEST, close=True)
            return
        try:
            exchange.begin()
        except Exception:
            logger.exception("unexpected error while handling a request")
            if exchange.response_started:
                self.abort()
            else:
                exchange.respond(responses.BAD_GATEWAY, close=True)

    def _reject(self, response: LocalResponse) -> None:
        """Answer unparseable input once earlier requests are answered."""
        self._rejected = response
        self.pause_reading("rejected", True)
        broken, self._parsing = self._parsing, None
        if broken is not None and broken in self._queue:
            self._queue.remove(broken)
        if self.active is None or self.active is broken:
            # The broken request is the active one: the rejection replaces it.
            if self.active is not None:
                self.active.abandon()
                if self.active.response_started:
                    self.abort()
                    return
                self.active = None
            self._queue.clear()
            self._send_rejection()

    def _send_rejection(self) -> None:
        assert self._rejected is not None, "no rejection to send"
        self.write(
            responses.serialize(self._rejected, close=True, head=False, latency_ms=0)
        )
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close after the client stops sending, or after `LINGER` seconds.

        A refused client is often still sending (a head or body too large).
        Closing with its bytes unread would reset the connection, and a reset
        can destroy the response before the client reads it (RFC 9112,
        9.6). So the response goes out followed by our FIN, and what the
        client still sends is read and dropped until it closes too.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self.paused.clear()
        transport.resume_reading()
        self._linger = self.loop.call_later(LINGER, self._close)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class ProxyServer:
    """The proxy listener, its client connections and the upstream pool."""

    def __init__(self, switch: Switch, *, keepalive_timeout: float = 60.0) -> None:
        self.switch = switch
        self.loop = asyncio.get_running_loop()
        self.pool = UpstreamPool(self.loop)
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self._keepalive_timeout = keepalive_timeout
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        # Requests per status class (index 1 to 5), read by telemetry.
        self.status_counts = [0] * 6
        self.accepted = 0  # client connections since the start

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen on host:port; OSError if the address cannot be used.

        With `reuse_port`, processes of one user may listen on the same port
        (SO_REUSEPORT): the kernel spreads new connections among them.
        """
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self),
            host,
            port,
            backlog=1024,
            reuse_port=reuse_port or None,
        )
        self._sweeper = self.loop.call_later(self._keepalive_timeout / 4, self._sweep)

    @property
    def port(self) -> int:
        """Return the port actually listened on."""
        assert self._server is not None, "server not started"
        # Read as Any: uvloop gives a list where asyncio's stubs say a tuple.
        sockets = getattr(self._server, "sockets")  # noqa: B009
        return int(sockets[0].getsockname()[1])

    def counters(self) -> dict[str, int]:
        """Return request counters since the node started."""
        counts = self.status_counts
        by_class = {f"responses_{n}xx": counts[n] for n in range(1, 6)}
        return {"requests": sum(counts), "connections": len(self.connections)} | (
            by_class
        )

    def figures(self) -> dict[str, int]:
        """Return the connection figures that Kong's nginx statistics give.

        A connection is writing while it has a request to answer, reading
        while it has part of a head, and waiting otherwise.
        """
        writing = reading = 0
        for conn in self.connections:
            if conn.active is not None:
                writing += 1
            elif conn._head_size:
                reading += 1
        active = len(self.connections)
        return {
            "accepted": self.accepted,
            "handled": self.accepted,
            "requests": sum(self.status_counts),
            "active": active,
            "reading": reading,
            "writing": writing,
            "waiting": active - reading - writing,
        }

    def forget(self, conn: ClientConnection) -> None:
        """Drop a closed connection from the set being tracked."""
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self._drained.set()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish, then close."""
        # Stop accepting new connections.
        self.draining = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()

        # Let each connection finish its current exchange, within the bound.
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except TimeoutError:
                logger.warning(
                    "closing %d connections still busy after %.0f s",
                    len(self.connections),
                    timeout,
                )

        # Close whatever is left, and the idle upstream connections.
        for conn in list(self.connections):
            conn.abort()
        self.pool.close()

    def _sweep(self) -> None:
        """Close client connections idle for longer than the keepalive timeout."""
        deadline = self.loop.time() - self._keepalive_timeout
        for conn in list(self.connections):
            if conn.active is None and conn.last_active < deadline:
                conn.shutdown()
        self._sweeper = self.loop.call_later(self._keepalive_timeout / 4, self._sweep)
