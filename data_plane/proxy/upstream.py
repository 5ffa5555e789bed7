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
from typing import Final, Protocol, cast

import httptools

from data_plane.runtime.compiled import Upstream

logger = logging.getLogger(__name__)

# A read timer that fires this early (the loop's clock counts milliseconds)
# still counts as on time.
_TIMER_SLACK: Final = 0.002


# Hop-by-hop headers (RFC 9110 7.6.1) and the framing Portico writes itself.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_RELAYED: Final = HOP_BY_HOP | {b"content-length"}
_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close"})  # list no other header


class ResponseSink(Protocol):
    """What an exchange offers its upstream connection."""

    def response_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        length: bytes | None,
        chunked: bool,
    ) -> None:
        """Take the response head: `lines` are the headers to relay, encoded.

        `length` is the upstream's Content-Length and `chunked` whether its
        body is chunked; neither header is among `lines`.
        """
        ...

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
        self.reading_paused = False

        # Per response.
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False  # the request was HEAD: the headers end it
        self._reason = b""
        self._lines: list[bytes] = []  # headers to relay, encoded as parsed
        self._length: bytes | None = None
        self._chunked = False
        self._connection = b""  # the Connection header, which may list more
        self._informational = False
        self._delimited_by_close = False
        self._started = False
        self._done = False
        self._keep_alive = False

        # Read timeout. One timer outlives the exchanges: a request only
        # notes when it began and what the counters were, and the timer,
        # when it fires, decides whether the data has stalled long enough.
        self._reads = 0
        self._writes = 0
        self._seen = 0  # reads + writes at the start or at the last check
        self._begun = 0.0  # when the current request was sent
        self._read_timeout = 60.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
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
            if self._done:
                # The response is whole; the bytes after it start no valid
                # response (a body sent with a 204, say): the client gets
                # the response, and the connection is not used again.
                self._keep_alive = False
                self._finish()
                return
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
            self._write_timer = self.pool.loop.call_later(
                self._write_timeout, self._fail, True
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
        lowered = name.lower()
        if lowered not in _NOT_RELAYED:
            self._lines += (name, b": ", value, b"\r\n")
        elif lowered == b"content-length":
            self._length = value
        elif lowered == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif lowered == b"connection" and value.lower() not in _PLAIN_CONNECTION:
            self._connection += b"," + value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # Informational answers (we never ask for 100) are not relayed.
            self._informational = True
            return
        self._started = True
        length, chunked = self._length, self._chunked
        self._delimited_by_close = (
            length is None and not chunked and status not in (204, 304)
        )
        lines, self._lines = self._lines, []
        if self._connection:
            lines = _drop_listed(lines, self._connection)
            self._connection = b""
        assert self.sink is not None, "response without an exchange"
        self.sink.response_head(status, self._reason, lines, length, chunked)
        if self._head_only:
            self._done = True
            self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None and not self._done:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self._reason, self._lines = b"", []
            self._length, self._chunked = None, False
            self._connection = b""
            return
        self._done = True
        self._keep_alive = self._parser.should_keep_alive()

    # Used by the exchange

    def start(
        self,
        sink: ResponseSink,
        upstream: Upstream,
        head_only: bool,
        head: bytes,
        body: list[bytes],
        now: float,
    ) -> None:
        """Send a request's head (and any body ready) on behalf of `sink`.

        `now` is the loop's time, which the caller has just read.
        """
        transport = self.transport
        assert transport is not None, "connection not made"
        self.sink = sink
        self._head_only = head_only
        self._write_timeout = upstream.write_timeout
        if body:
            transport.writelines([head, *body])
        else:
            transport.write(head)

        # The read timeout counts from now; the timer may fire earlier, not later.
        timeout = self._read_timeout = upstream.read_timeout
        self._begun = now
        self._seen = self._reads + self._writes
        if self._timer is None or self._timer_at > now + timeout:
            self._arm(now + timeout)

    def write(self, data: list[bytes]) -> None:
        """Send more of the request body."""
        self._writes += 1
        if self.transport is not None:
            self.transport.writelines(data)

    def pause_reading(self, paused: bool) -> None:
        """Stop (or resume) reading while the client cannot take more."""
        if self.transport is None or self.transport.is_closing():
            return
        self.reading_paused = paused
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

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.pool.loop.call_at(when, self._check_read)
        self._timer_at = when

    def _check_read(self) -> None:
        self._timer = None
        if self.sink is None:
            return  # idle in the pool: the next request arms a timer again
        now = self.pool.loop.time()
        seen = self._reads + self._writes
        if seen != self._seen:
            # Data moved since (a response, or a slow upload): wait again.
            self._seen = seen
            self._arm(now + self._read_timeout)
        elif now < self._begun + self._read_timeout - _TIMER_SLACK:
            # Armed for an earlier request on this connection.
            self._arm(self._begun + self._read_timeout)
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
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._head_only:
            self._parser = httptools.HttpResponseParser(self)
        self.sink = None
        self._reason, self._lines = b"", []
        self._length, self._chunked = None, False
        self._started = self._done = self._head_only = False
        if sink is not None:
            sink.response_done(keep_alive)


def _drop_listed(lines: list[bytes], connection: bytes) -> list[bytes]:
    """Leave out the headers a Connection header lists (RFC 9110 7.6.1)."""
    listed = {token.strip().lower() for token in connection.split(b",")}
    listed -= {b"close", b"keep-alive", b""}
    if not listed:
        return lines
    kept: list[bytes] = []
    # `lines` holds four pieces per header: name, ": ", value, CRLF.
    for start in range(0, len(lines), 4):
        if lines[start].lower() not in listed:
            kept += lines[start : start + 4]
    return kept


class UpstreamPool:
    """Idle upstream connections by key, reused most recent first."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_idle: int = 256,
        idle_timeout: float = 60.0,
    ) -> None:
        self.loop = loop
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, key: str) -> UpstreamConnection | None:
        """Return an idle connection to `key`, if one is open."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                conn.reused = True
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        """Keep `conn` for the next request to its upstream."""
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        if len(idle) >= self._max_idle:
            conn.close()
            return
        loop = self.loop
        conn.idle_since = loop.time()
        if conn.reading_paused:
            # An idle connection must read, to notice the upstream closing it.
            conn.reading_paused = False
            transport.resume_reading()
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
        _, protocol = await asyncio.wait_for(
            self.loop.create_connection(
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
        deadline = self.loop.time() - self._idle_timeout
        remaining = False
        for idle in self._idle.values():
            for conn in [c for c in idle if c.idle_since < deadline]:
                idle.remove(conn)
                conn.close()
            remaining = remaining or bool(idle)
        if remaining:
            self._sweeper = self.loop.call_later(self._idle_timeout / 4, self._sweep)
