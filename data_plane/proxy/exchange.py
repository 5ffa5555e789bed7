"""Carry one request from a client to an upstream and its response back.

An :class:`Exchange` is created when a request's headers are parsed. When
its client connection makes it active, it routes the request, runs the
route's plugins, and either answers itself or sends the request upstream,
streaming the body both ways. Bodies are never buffered whole: a side whose
transport buffer is full pauses reading on the other side. The exception is
a response body that a plugin changes, held up to a limit
(:mod:`data_plane.proxy.hold`).

Retries: a failed connect is retried up to the service's `retries`; an
idempotent request on a reused pooled connection that closes before
answering is retried once on a fresh one, if its body was small enough to
be retained.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Final

from data_plane.plugins.base import (
    NO_REWRITE,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    Plugin,
    RequestContext,
    Retarget,
    Served,
)
from data_plane.proxy import responses
from data_plane.proxy.hold import HOLD_LIMIT, BodyHold, change_body
from data_plane.proxy.upstream import HOP_BY_HOP, UpstreamConnection
from data_plane.runtime.compiled import (
    BodyFilters,
    Filters,
    Loggers,
    RouteTarget,
    Upstream,
)
from data_plane.runtime.paths import normalize_path

if TYPE_CHECKING:
    from data_plane.proxy.server import ClientConnection

logger = logging.getLogger(__name__)

# Hop-by-hop headers and the ones Portico writes itself.
_REQUEST_REWRITTEN: Final = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-path",
    b"x-real-ip",
}
# Status lines with their standard reason phrase, ready to send.
_STATUS_LINES: Final = {
    (status, phrase): b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    for status, phrase in responses.REASONS.items()
}
# The end of a response head: Via and the latencies, in milliseconds; the
# common small values are encoded ahead of time.
_TAIL: Final = (
    responses.VIA
    + b"X-Portico-Upstream-Latency: %d\r\nX-Portico-Proxy-Latency: %d\r\n\r\n"
)
_TABLED: Final = 32
_TAILS: Final = [[_TAIL % (up, px) for px in range(_TABLED)] for up in range(_TABLED)]

# Methods a stale pooled connection may be retried for (RFC 9110 9.2.2).
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# A first body piece this small goes out in one buffer with the head.
_JOIN_LIMIT: Final = 16 * 1024
_RETAIN_LIMIT: Final = 64 * 1024  # body bytes kept for a retry on a fresh connection
_BUFFER_LIMIT: Final = 256 * 1024  # body bytes buffered before reading is paused
_BODY_WAIT: Final = 60.0  # seconds a plugin waits for the rest of a body


def _combined(rewrites: list[HeaderRewrite]) -> HeaderRewrite:
    """Return the rewrites, applied in turn, as one."""
    combined = rewrites[0]
    for rewrite in rewrites[1:]:
        combined = combined.then(rewrite)
    return combined


def _without(lines: list[bytes], names: frozenset[bytes]) -> list[bytes]:
    """Return head pieces `lines` without the headers `names` (lowercase).

    `lines` itself when none is there, the common case: nothing is copied.
    """
    for name in lines[::4]:
        if name.lower() in names:
            break
    else:
        return lines
    kept: list[bytes] = []
    for start in range(0, len(lines), 4):
        if lines[start].lower() not in names:
            kept += lines[start : start + 4]
    return kept


def _header_pieces(block: bytes) -> list[bytes]:
    """Return encoded header lines as head pieces: name, ": ", value, CRLF."""
    pieces: list[bytes] = []
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b": ")
        if sep:
            pieces += (name, sep, value, b"\r\n")
    return pieces


class Exchange:
    """One request and its response, from headers parsed to response sent."""

    __slots__ = (
        "client",
        "method",
        "url",
        "headers",
        "header_map",
        "http_11",
        "keep_alive",
        "expect_continue",
        "started_at",
        "chunked_request",
        "content_length",
        "request_done",
        "buffer",
        "buffered",
        "retained",
        "retained_size",
        "body_waiter",
        "body_limit",
        "body_seen",
        "target",
        "plugins",
        "routed",
        "upstream",
        "conn",
        "attempts",
        "sent_at",
        "head_data",
        "response_started",
        "pending_head",
        "response_done_",
        "chunked_response",
        "close_after",
        "local",
        "ctx",
        "filters",
        "bodies",
        "hold",
        "loggers",
        "status",
        "answered_at",
        "received",
        "sent",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: str,
        url: bytes,
        headers: list[tuple[bytes, bytes, bytes]],
        header_map: dict[str, str],
        http_11: bool,
        keep_alive: bool,
        started_at: float,
    ) -> None:
        # Request, as the client sent it.
        self.client = client
        self.method = method
        self.url = url
        self.headers = headers
        self.header_map = header_map
        self.http_11 = http_11
        self.keep_alive = keep_alive
        self.started_at = started_at
        self.expect_continue = header_map.get("expect", "").lower() == "100-continue"
        self.chunked_request = "chunked" in header_map.get("transfer-encoding", "")
        length = header_map.get("content-length")
        self.content_length = int(length) if length and length.isdigit() else None

        # Request body: buffered until an upstream connection is ready.
        self.request_done = False
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.retained: list[bytes] | None = []
        self.retained_size = 0
        # Set by plugins: a wait for the whole body; a size limit on it.
        self.body_waiter: asyncio.Future[bytes | None] | None = None
        self.body_limit: tuple[int, LocalResponse] | None = None
        self.body_seen = 0

        # Upstream side.
        self.target: RouteTarget | None = None
        self.plugins: tuple[Plugin, ...] = ()
        self.routed: tuple[str, int, bytes, str, str] = ("", 0, b"", "", "")
        self.upstream: Upstream | None = None
        self.conn: UpstreamConnection | None = None
        self.attempts = 0
        self.sent_at = 0.0
        self.head_data = b""

        # Response side.
        self.response_started = False
        self.pending_head = b""
        self.response_done_ = False
        self.chunked_response = False
        self.close_after = not keep_alive
        self.local = False

        # Response phase: kept only for a chain with plugins that have one.
        # `bodies` (the plugins with a body phase) and `hold` (a response
        # held back for them) are set along with `filters` and read only
        # when it is, so that other requests never pay for them.
        self.ctx: RequestContext | None = None
        self.filters: Filters = ()
        self.bodies: BodyFilters
        self.hold: BodyHold | None

        # Log phase: the plugins that record the exchange once it is over,
        # and the figures they are given.
        self.loggers: Loggers = ()
        self.status = 0  # of the response, once one is chosen
        self.answered_at = 0.0  # when the response head was known
        self.received = 0  # request body bytes
        self.sent = 0  # response bytes, head included

    # Request side, fed by the client connection

    def begin(self) -> None:
        """Route the request, run plugins, and answer or go upstream."""
        config = self.client.server.switch.current
        path, _, query = self.url.partition(b"?")
        host = self.header_map.get("host", "")
        if not path.startswith(b"/"):
            # RFC 9112 3.2.2: an absolute-form target's authority is the host.
            scheme, sep, rest = path.partition(b"://")
            if not sep or scheme.lower() not in (b"http", b"https"):
                self.respond(responses.BAD_REQUEST, close=True)
                return
            authority, _, tail = rest.partition(b"/")
            host = authority.decode("latin-1")
            path = b"/" + tail
        text_path = normalize_path(path.decode("latin-1"))
        colon = host.rfind(":")
        hostname = (host[:colon] if colon > host.rfind("]") else host).lower()
        if config is None:
            self.respond(responses.NO_ROUTE)
            return
        found = config.router.match(self.method, hostname, text_path, self.header_map)
        if found is None:
            self.respond(responses.NO_ROUTE)
            return
        self.target = target = found.target
        self.routed = (text_path, found.matched, query, host, hostname)
        phases = config.phases_of(target)
        self.plugins = plugins = phases.access
        if plugins:
            ctx = RequestContext(
                self.method,
                text_path,
                self.header_map,
                self.client.peer_ip,
                query,
                self,
                target.route_id,
                found.captures,
            )
            if phases.filters:
                self.ctx, self.filters = ctx, phases.filters
                self.bodies, self.hold = phases.bodies, None
            if phases.loggers:
                self.ctx, self.loggers = ctx, phases.loggers
            self._run_plugins(ctx, 0)
        else:
            self._forward(NO_REWRITE)

    def _run_plugins(self, ctx: RequestContext, start: int) -> None:
        """Run the route's plugins from `start`; a deferred answer suspends."""
        plugins = self.plugins
        for index in range(start, len(plugins)):
            answer = plugins[index].access(ctx)
            if answer is None:
                continue
            if isinstance(answer, LocalResponse):
                self.respond(answer)
            else:
                answer.add_done_callback(partial(self._resume, ctx, index + 1))
            return
        if ctx.query is not self.routed[2]:
            path, matched, _, host, hostname = self.routed
            self.routed = (path, matched, ctx.query, host, hostname)
        retarget = ctx.retarget
        if retarget is None:
            self._forward(ctx.rewrite)
        else:
            self._change_method(retarget.method)
            self._forward(ctx.rewrite, retarget)

    def _change_method(self, method: str | None) -> None:
        """Send the request upstream with a plugin's `method`.

        A HEAD request stays HEAD: the client takes no body, and a body the
        upstream sent it would end up on the connection. Another request
        made HEAD gets the upstream's head without the body it announces
        (as from Kong): the connection closes after it.
        """
        if method is None or method == self.method or self.method == "HEAD":
            return
        if self.target is None or self.target.upstream is None:
            return  # answered by Portico: to the client's method
        if method == "HEAD":
            self.close_after = True
        self.method = method  # the client's stays in the context

    def _resume(self, ctx: RequestContext, start: int, done: Deferred) -> None:
        """Continue after a plugin's deferred answer (a password check)."""
        if self.client.gone or self.local:
            return
        try:
            answer = done.result()
            if answer is not None:
                self.respond(answer)
            else:
                self._run_plugins(ctx, start)
        except Exception:
            logger.exception("unexpected error while running plugins")
            if not self.response_started:
                self.respond(responses.INTERNAL_ERROR, close=True)

    def _forward(
        self, rewrite: HeaderRewrite, retarget: Retarget | None = None
    ) -> None:
        """Send the routed request upstream (or say the route has no service).

        `retarget` holds what plugins chose instead of the routed path and
        Host; the method is changed already.
        """
        target = self.target
        assert target is not None, "forward before routing"
        upstream = target.upstream
        if upstream is None:
            self.respond(responses.NO_SERVICE)
            return
        self.upstream = upstream
        path, matched, query, _, _ = self.routed
        if retarget is None or retarget.path is None:
            uri = target.upstream_uri(path, matched).encode("latin-1")
        else:
            uri = retarget.path.encode("latin-1")
        if query:
            uri += b"?" + query
        self.head_data = self._request_head(uri, rewrite, retarget)
        if self.expect_continue and not self.request_done:
            self.client.write(responses.CONTINUE)
        self._acquire()

    def _request_head(
        self, uri: bytes, rewrite: HeaderRewrite, retarget: Retarget | None
    ) -> bytes:
        """Serialize the request line and headers sent upstream.

        What does not depend on the request was encoded before it came: the
        upstream's Host line with the route, the plugins' headers with their
        rewrite, X-Forwarded-Proto/-Port and X-Real-IP with the connection.
        """
        target, upstream = self.target, self.upstream
        assert target is not None and upstream is not None, "head before routing"
        path, _, _, host, hostname = self.routed
        lines = [self.method.encode(), b" ", uri, b" HTTP/1.1\r\n"]
        if retarget is not None and retarget.host:
            lines += (b"Host: ", retarget.host.encode(), b"\r\n")
        elif target.preserve_host and host:
            lines += (b"Host: ", host.encode("latin-1"), b"\r\n")
        else:
            lines.append(upstream.host_line)

        connection_listed = self.header_map.get("connection")
        drop = _REQUEST_REWRITTEN
        if connection_listed:
            drop = drop | {
                token.strip().lower().encode() for token in connection_listed.split(",")
            }
        removed = rewrite.names
        forwarded_for = None
        for lowered, name, value in self.headers:
            if lowered in drop:
                if lowered == b"x-forwarded-for":
                    forwarded_for = value
                continue
            if lowered in removed:
                continue
            lines += (name, b": ", value, b"\r\n")

        client = self.client
        ip = client.ip
        lines += (
            rewrite.block,
            b"X-Forwarded-For: ",
            forwarded_for + b", " + ip if forwarded_for else ip,
            b"\r\nX-Forwarded-Host: ",
            hostname.encode("latin-1"),
            b"\r\nX-Forwarded-Path: ",
            path.encode("latin-1"),
            client.forwarded,
        )
        if self.chunked_request:
            lines.append(b"Transfer-Encoding: chunked\r\n\r\n")
        elif self.content_length is not None:
            lines.append(b"Content-Length: %d\r\n\r\n" % self.content_length)
        else:
            lines.append(b"\r\n")
        return b"".join(lines)

    def body(self, chunk: bytes) -> None:
        """Forward (or buffer) a piece of the request body."""
        self.received += len(chunk)
        if self.local or self.response_done_:
            return  # answered already: the rest of the body is dropped
        if self.body_limit is not None:
            self.body_seen += len(chunk)
            if self.body_seen > self.body_limit[0]:
                self._refuse_body()
                return
        framed = (
            [b"%x\r\n" % len(chunk), chunk, b"\r\n"]
            if self.chunked_request
            else [chunk]
        )
        if self.retained is not None:
            self.retained_size += len(chunk)
            if self.retained_size <= _RETAIN_LIMIT:
                self.retained += framed
            else:
                self.retained = None
        if self.conn is not None:
            self.conn.write(framed)
            return
        self.buffer += framed
        self.buffered += len(chunk)
        if self.buffered > _BUFFER_LIMIT:
            self.client.pause_reading("buffer", True)
            if self.body_waiter is not None:
                self._give_body(None)  # too large to hold: the waiter goes on

    def end(self) -> None:
        """Mark the request complete; finish if the response is sent too."""
        self.request_done = True
        if self.local or self.response_done_:
            self._finish()
            return
        if self.body_waiter is not None:
            self._give_body(self._received_body())
        if self.chunked_request:
            if self.retained is not None:
                self.retained.append(b"0\r\n\r\n")
            if self.conn is not None:
                self.conn.write([b"0\r\n\r\n"])
            else:
                self.buffer.append(b"0\r\n\r\n")

    # The body, for plugins (see data_plane.plugins.base.Request)

    def read_body(self) -> asyncio.Future[bytes | None]:
        """Return a future of the whole body; None if over the buffer limit."""
        future: asyncio.Future[bytes | None] = self.client.loop.create_future()
        if self.request_done:
            future.set_result(self._received_body())
        elif self.buffered > _BUFFER_LIMIT:
            future.set_result(None)
        else:
            self.body_waiter = future
            if self.expect_continue:
                # The client sends nothing before it is told to go on.
                self.expect_continue = False
                self.client.write(responses.CONTINUE)
            # A client that stops sending does not hold the request forever
            # (nginx's client_body_timeout): the waiter goes on without it.
            timer = self.client.loop.call_later(_BODY_WAIT, self._give_body, None)
            future.add_done_callback(lambda _: timer.cancel())
        return future

    def replace_body(self, body: bytes) -> None:
        """Send `body` upstream instead of the body read whole before."""
        assert self.request_done, "body replaced before it was read"
        self.chunked_request = False
        self.content_length = self.buffered = self.retained_size = len(body)
        self.buffer = [body]
        self.retained = [body] if len(body) <= _RETAIN_LIMIT else None

    def limit_body(self, limit: int, response: LocalResponse) -> bool:
        """Answer `response` once the body grows past `limit` bytes.

        Returns True when what came so far is over it already.
        """
        self.body_limit = (limit, response)
        self.body_seen = self.buffered
        return self.body_seen > limit

    def _received_body(self) -> bytes:
        # Buffered chunks of a chunked body are framed: size, data, CRLF.
        pieces = self.buffer[1::3] if self.chunked_request else self.buffer
        return b"".join(pieces)

    def _give_body(self, body: bytes | None) -> None:
        waiter, self.body_waiter = self.body_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    def _refuse_body(self) -> None:
        """Answer the body limit's response: the body grew past the limit."""
        assert self.body_limit is not None, "no body limit"
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        if self.response_started:
            self.client.abort()  # part of the upstream's answer went out
            return
        self.respond(self.body_limit[1], close=True)

    # Upstream connection

    def _acquire(self) -> None:
        upstream = self.upstream
        assert upstream is not None, "acquire before routing"
        conn = self.client.server.pool.take(upstream.key)
        if conn is not None:
            self._attach(conn)
        else:
            self.client.server.loop.create_task(self._connect())

    async def _connect(self) -> None:
        upstream = self.upstream
        assert upstream is not None, "connect before routing"
        pool = self.client.server.pool
        while True:
            try:
                conn = await pool.connect(upstream)
            except (TimeoutError, OSError) as exc:
                self.attempts += 1
                if self.attempts <= upstream.retries and not self.client.gone:
                    continue
                timed_out = isinstance(exc, TimeoutError)
                self._fail_upstream(timed_out)
                return
            if self.client.gone or self.local:
                conn.close()
                return
            self._attach(conn)
            return

    def _attach(self, conn: UpstreamConnection) -> None:
        upstream = self.upstream
        assert upstream is not None, "attach before routing"
        self.conn = conn
        client = self.client
        self.sent_at = now = client.loop.time()
        body, self.buffer = self.buffer, []
        self.buffered = 0
        conn.start(self, upstream, self.method == "HEAD", self.head_data, body, now)
        if client.paused:
            client.pause_reading("buffer", False)
        if client.write_paused:
            conn.pause_reading(True)  # the client is not taking data yet

    # ResponseSink: what the upstream connection tells us

    def response_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        length: bytes | None,
        chunked: bool,
    ) -> None:
        client = self.client
        now = client.loop.time()
        self.retained = None  # an answer came: no retry from here on
        if self.filters:
            hold = self.hold
            if hold is None:
                lines = self._filter_head(status, lines)
                if self.bodies and self._hold(
                    (status, reason, lines, length, chunked), now
                ):
                    return
            else:
                # A held head, back once its body is known (or too large):
                # filtered already, and answered when it first came.
                now = hold.answered_at
        status_line = _STATUS_LINES.get((status, reason))
        if status_line is None:
            status_line = b"HTTP/1.1 %d %s\r\n" % (
                status,
                reason or responses.reason(status),
            )

        bodyless = self.method == "HEAD" or status in (204, 304)
        if length is not None and (not chunked or bodyless):
            lines += (b"Content-Length: ", length, b"\r\n")
        elif not bodyless:
            if self.http_11:
                self.chunked_response = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.close_after = True  # HTTP/1.0: the body ends with the close
        if self.close_after or client.closing:
            lines.append(b"Connection: close\r\n")
        elif not self.http_11:
            lines.append(b"Connection: keep-alive\r\n")

        upstream_ms = int((now - self.sent_at) * 1000)
        proxy_ms = int((self.sent_at - self.started_at) * 1000)
        if upstream_ms < _TABLED and proxy_ms < _TABLED:
            lines.append(_TAILS[upstream_ms][proxy_ms])
        else:
            lines.append(_TAIL % (upstream_ms, proxy_ms))
        self.response_started = True
        self.status, self.answered_at = status, now
        client.server.status_counts[status // 100 if status < 600 else 5] += 1
        # Held back to go out with the first body piece: one send, not two.
        self.pending_head = head = status_line + b"".join(lines)
        self.sent = len(head)

    def _response_rewrites(
        self, status: int, lines: list[bytes]
    ) -> list[HeaderRewrite]:
        """Return what the route's plugins change in a response head, in turn.

        Like Kong, every plugin of the chain takes part, also when an
        earlier one answered the request itself. Each rewrite sets headers
        that no earlier one wrote, the common case, so applying them one
        after another is applying their combination (`then`) without
        building it; one that replaces a header an earlier one wrote is
        merged with them all.
        """
        ctx = self.ctx
        assert ctx is not None, "response phase without a context"
        rewrites = [ctx.downstream]
        for _, plugin in self.filters:
            found = plugin.header_filter(ctx, status, lines)
            if found is None:
                continue
            if all(found.names.isdisjoint(earlier.written) for earlier in rewrites):
                rewrites.append(found)
            else:
                rewrites = [_combined([*rewrites, found])]
        return rewrites

    def _response_rewrite(self, status: int, lines: list[bytes]) -> HeaderRewrite:
        """Return what the route's plugins change in a response head, as one."""
        return _combined(self._response_rewrites(status, lines))

    def _filter_head(self, status: int, lines: list[bytes]) -> list[bytes]:
        """Apply the plugins' response phase to the upstream's header lines."""
        blocks = []
        for rewrite in self._response_rewrites(status, lines):
            if rewrite.names:
                lines = _without(lines, rewrite.names)
            if rewrite.block:
                blocks.append(rewrite.block)
        if blocks:
            # One piece at the end: `_hold` splits it back into lines.
            lines.append(blocks[0] if len(blocks) == 1 else b"".join(blocks))
        return lines

    def _hold(
        self, head: tuple[int, bytes, list[bytes], bytes | None, bool], now: float
    ) -> bool:
        """Hold the response back if a body-phase plugin wants its body.

        `head` is the response's (status, reason, filtered header lines,
        Content-Length, chunked). A body announced larger than the hold
        limit streams as it comes.
        """
        status, reason, lines, length, chunked = head
        if self.method == "HEAD" or status in (204, 304):
            return False
        if length is not None and (not length.isdigit() or int(length) > HOLD_LIMIT):
            return False
        if len(lines) % 4:
            # The plugins' own lines end the head in one block: the body
            # phase sees them as headers like the others.
            lines = lines[:-1] + _header_pieces(lines[-1])
        ctx, conn = self.ctx, self.conn
        assert ctx is not None and conn is not None, "hold before the upstream"
        plugins = tuple(p for p in self.bodies if p.wants_body(ctx, status, lines))
        if not plugins:
            return False
        head = (status, reason, lines, length, chunked)
        self.hold = hold = BodyHold(self, plugins, head, now)
        conn.sink = hold
        return True

    def _filter_local(self, response: LocalResponse) -> tuple[LocalResponse, bytes]:
        """Apply the plugins' response phase to a response Portico makes.

        Returns the response without the headers the plugins replace, and
        the header lines they add.
        """
        lines: list[bytes] = []
        if response.content_type:
            lines += (b"Content-Type", b": ", response.content_type.encode(), b"\r\n")
        for name, value in response.headers:
            lines += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        rewrite = self._response_rewrite(response.status, lines)
        if self.bodies and self.method != "HEAD":
            response = self._change_local_body(response, lines, rewrite)
        if rewrite.names:
            headers = tuple(
                (name, value)
                for name, value in response.headers
                if name.lower().encode("latin-1") not in rewrite.names
            )
            content_type = response.content_type
            if b"content-type" in rewrite.names:
                content_type = ""  # a plugin's own Content-Type replaces it
            response = replace(response, headers=headers, content_type=content_type)
        return response, rewrite.block

    def _change_local_body(
        self, response: LocalResponse, lines: list[bytes], rewrite: HeaderRewrite
    ) -> LocalResponse:
        """Run the body phase on a response Portico makes, as Kong does.

        `lines` are the response's header lines before `rewrite`, the
        plugins' changes, which the body phase sees applied.
        """
        status = response.status
        if status in (204, 304):
            return response
        final = _without(lines, rewrite.names) + _header_pieces(rewrite.block)
        ctx = self.ctx
        assert ctx is not None, "body phase without a context"
        plugins = tuple(p for p in self.bodies if p.wants_body(ctx, status, final))
        if not plugins:
            return response
        body = change_body(plugins, ctx, status, final, response.body)
        return replace(response, body=body)

    def response_body(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.sent += len(chunk)
        head = self.pending_head
        if self.chunked_response:
            self.pending_head = b""
            self.client.writelines([head, b"%x\r\n" % len(chunk), chunk, b"\r\n"])
        elif not head:
            self.client.write(chunk)
        elif len(chunk) <= _JOIN_LIMIT:
            self.pending_head = b""
            self.client.write(head + chunk)  # one buffer: the cheapest send
        else:
            self.pending_head = b""
            self.client.writelines([head, chunk])

    def response_done(self, reusable: bool) -> None:
        conn, self.conn = self.conn, None
        head, self.pending_head = self.pending_head, b""
        if self.chunked_response:
            self.client.writelines([head, b"0\r\n\r\n"])
        elif head:
            self.client.write(head)
        self.response_done_ = True
        if self.client.paused:
            self.client.pause_reading("upstream", False)
        if conn is not None:
            if reusable and self.request_done:
                self.client.server.pool.put(conn)
            else:
                conn.close()
        if not self.request_done:
            self.close_after = True  # the client is still sending: cut it off
        self._finish()

    def upstream_failed(self, timed_out: bool) -> None:
        conn, self.conn = self.conn, None
        if self.response_started:
            self.client.abort()  # the client has part of a response: cut it
            return
        self.client.pause_reading("upstream", False)
        if (
            conn is not None
            and conn.reused
            and not timed_out
            and self.method in _IDEMPOTENT
            and self.retained is not None
            and not self.client.gone
        ):
            # A pooled connection the upstream had closed: retry on a new one.
            self.buffer = list(self.retained)
            self.client.server.loop.create_task(self._connect())
            return
        self._fail_upstream(timed_out)

    def upstream_paused(self, paused: bool) -> None:
        self.client.pause_reading("upstream", paused)

    def _fail_upstream(self, timed_out: bool) -> None:
        if self.client.gone or self.local:
            return
        self.respond(responses.GATEWAY_TIMEOUT if timed_out else responses.BAD_GATEWAY)

    # Ending

    def respond(self, response: LocalResponse, *, close: bool = False) -> None:
        """Answer the client with a response Portico makes itself."""
        self.local = True
        self.buffer = []
        if not self.request_done and (self.expect_continue or close):
            # The body may never come (no 100 Continue was sent): close.
            close = True
        close = close or self.close_after or self.client.closing
        self.close_after = close
        self.answered_at = now = self.client.loop.time()
        latency = now - self.started_at
        extra = b""
        if self.filters:
            response, extra = self._filter_local(response)
        self.status = status = response.status
        self.client.server.status_counts[status // 100 if status < 600 else 5] += 1
        data = responses.serialize(
            response,
            close=close,
            head=self.method == "HEAD",
            latency_ms=int(latency * 1000),
            extra=extra,
        )
        self.sent = len(data)
        self.client.write(data)
        if self.client.paused:
            self.client.pause_reading("buffer", False)
        if self.request_done or close:
            self._finish()

    def _finish(self) -> None:
        if self.loggers:
            self._log()
        if self.ctx is not None:
            # The context points back at the exchange: unlinked, both are
            # freed at once instead of waiting for the cycle collector.
            self.ctx.request = None
        self.client.finished(self, self.close_after)

    def abandon(self) -> None:
        """Drop the upstream side because the client went away."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        if self.loggers:
            self._log()

    def _log(self) -> None:
        """Run the route's log phase, once: the exchange is over.

        A client gone before any response counts as nginx logs it, 499.
        """
        loggers, self.loggers = self.loggers, ()
        ctx, target = self.ctx, self.target
        assert ctx is not None and target is not None, "log phase before routing"
        now = self.client.loop.time()
        started = self.started_at
        by_upstream = self.response_started and not self.local
        upstream_ms = None
        if by_upstream:
            portico_end = self.sent_at
            upstream_ms = (self.answered_at - self.sent_at) * 1000
        else:
            portico_end = self.answered_at or self.sent_at or now
        served = Served(
            self.status or 499,
            by_upstream,
            (now - started) * 1000,
            (portico_end - started) * 1000,
            upstream_ms,
            self._head_size() + self.received,
            self.sent,
            target.labels,
        )
        for plugin in loggers:
            try:
                plugin.log(ctx, served)
            except Exception:
                logger.exception("unexpected error in a plugin's log phase")

    def _head_size(self) -> int:
        """Return the size of the request line and headers as received."""
        # "METHOD URL HTTP/1.1" CRLF, "name: value" CRLF each, CRLF. The
        # context keeps the client's method when a plugin changed it.
        ctx = self.ctx
        method = self.method if ctx is None else ctx.method
        size = len(method) + len(self.url) + 14
        for _, name, value in self.headers:
            size += len(name) + len(value) + 4
        return size
