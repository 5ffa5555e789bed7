"""Keep persistent connections to upstreams and parse their responses.

An :class:`UpstreamConnection` serves one exchange at a time and tells it
what the upstream answers through the :class:`ResponseSink` methods. When a
response ends cleanly and both sides allow it, the connection goes back to
the :class:`UpstreamPool`, keyed by scheme, host, port and TLS verification,
and the next request to that upstream reuses it without a handshake.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

import httptools

from data_plane.runtime.compiled import Upstream

logger = logging.getLogger(__name__)


class ResponseSink(Protocol):
    """What an exchange offers its upstream connection."""

    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def response_body(self, chunk: bytes) -> None: ...
    def response_done(self, reusable: bool) -> None: ...
    def upstream_failed(self, timed_out: bool) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream; parses the responses it receives."""

    def __init__(self, pool: UpstreamPool, key: str) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.idle_since = 0.0
        self.reused = False

        # Per response.
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False  # the request was HEAD: the headers end it
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._delimited_by_close = False
        self._started = False
        self._done = False
        self._keep_alive = False

        # Timeouts: reads counts data_received calls; the timer compares.
        self._reads = 0
        self._writes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._write_timeout = 60.0
        self._write_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reads += 1
        if self.sink is None:
            # An idle connection must stay silent; anything else is garbage.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(timed_out=False)
            return
        if self._done:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        sink, self.sink = self.sink, None
        self.pool.discard(self)
        if sink is None:
            return
        if self._started and self._delimited_by_close and not self._done:
            sink.response_done(False)
        else:
            sink.upstream_failed(timed_out=False)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_paused(True)
            timeout = self._write_timeout
            self._write_timer = asyncio.get_running_loop().call_later(
                timeout, self._fail, True
            )

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self.sink is not None:
            self.sink.upstream_paused(False)

    # httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # Informational answers (we never ask for 100) are not relayed.
            self._informational = True
            return
        self._started = True
        self._delimited_by_close = _delimited_by_close(status, self._headers)
        assert self.sink is not None, "response without an exchange"
        self.sink.response_head(status, self._reason, self._headers)
        if self._head_only:
            self._done = True
            self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None and not self._done:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self._reason, self._headers = b"", []
            return
        self._done = True
        self._keep_alive = self._parser.should_keep_alive()

    # Used by the exchange

    def start(
        self, sink: ResponseSink, upstream: Upstream, head_only: bool, data: list[bytes]
    ) -> None:
        """Send a request's head (and any body ready) on behalf of `sink`."""
        assert self.transport is not None, "connection not made"
        self.sink = sink
        self._head_only = head_only
        self._write_timeout = upstream.write_timeout
        self.transport.writelines(data)
        self._arm(upstream.read_timeout)

    def write(self, data: list[bytes]) -> None:
        """Send more of the request body."""
        self._writes += 1
        if self.transport is not None:
            self.transport.writelines(data)

    def pause_reading(self, paused: bool) -> None:
        """Stop (or resume) reading while the client cannot take more."""
        if self.transport is None or self.transport.is_closing():
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close the connection; its exchange, if any, is told nothing more."""
        self.sink = None
        self._cancel_timers()
        if self.transport is not None:
            self.transport.close()

    # Internals

    def _arm(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        seen = self._reads + self._writes
        self._timer = loop.call_later(timeout, self._check_read, seen, timeout)

    def _check_read(self, seen: int, timeout: float) -> None:
        if self.sink is None:
            return
        if self._reads + self._writes != seen:
            # Data moved since (a response, or a slow upload): wait again.
            self._arm(timeout)
        else:
            self._fail(timed_out=True)

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _fail(self, timed_out: bool) -> None:
        sink = self.sink
        self.close()
        if sink is not None:
            sink.upstream_failed(timed_out)

    def _finish(self) -> None:
        """End the response; the exchange decides whether to pool us."""
        sink, keep_alive = self.sink, self._keep_alive
        self._cancel_timers()
        if self._head_only:
            self._parser = httptools.HttpResponseParser(self)
        self.sink = None
        self._reason, self._headers = b"", []
        self._started = self._done = self._head_only = False
        if sink is not None:
            sink.response_done(keep_alive)


def _delimited_by_close(status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """Tell whether the response body runs until the connection closes."""
    if status in (204, 304):
        return False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return False
        if lowered == b"transfer-encoding" and b"chunked" in value.lower():
            return False
    return True


class UpstreamPool:
    """Idle upstream connections by key, reused most recent first."""

    def __init__(self, *, max_idle: int = 256, idle_timeout: float = 60.0) -> None:
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, key: str) -> UpstreamConnection | None:
        """Return an idle connection to `key`, if one is open."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        """Keep `conn` for the next request to its upstream."""
        if conn.transport is None or conn.transport.is_closing():
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        conn.transport.resume_reading()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._idle_timeout / 4, self._sweep)

    def discard(self, conn: UpstreamConnection) -> None:
        """Forget a connection that closed while idle."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def connect(self, upstream: Upstream) -> UpstreamConnection:
        """Open a new connection to `upstream` within its connect timeout."""
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(self, upstream.key),
                upstream.host,
                upstream.port,
                ssl=upstream.ssl,
                server_hostname=upstream.host if upstream.ssl else None,
            ),
            upstream.connect_timeout,
        )
        return protocol

    def close(self) -> None:
        """Close every idle connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in list(idle):
                conn.close()
        self._idle.clear()

    def _sweep(self) -> None:
        """Close connections idle for longer than the idle timeout."""
        self._sweeper = None
        deadline = asyncio.get_running_loop().time() - self._idle_timeout
        remaining = False
        for idle in self._idle.values():
            for conn in [c for c in idle if c.idle_since < deadline]:
                idle.remove(conn)
                conn.close()
            remaining = remaining or bool(idle)
        if remaining:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._idle_timeout / 4, self._sweep)
