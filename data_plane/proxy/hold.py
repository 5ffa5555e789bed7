"""Hold an upstream response back while plugins change its body.

When a plugin of the route wants the body of a response (see
:class:`data_plane.plugins.base.BodyPlugin`), the exchange keeps the head
and puts a :class:`BodyHold` between the upstream connection and itself.
The hold gathers the body; at its end the plugins change it and the
exchange sends the head, with the new Content-Length, and the new body.

A body is held up to :data:`HOLD_LIMIT` bytes. A response that announces a
larger Content-Length is not held at all; one that grows past the limit
(chunked, or delimited by the close) is let go: the head goes out with its
own framing, then what was gathered, then the rest as it comes, unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from data_plane.plugins.base import BodyPlugin, RequestContext

if TYPE_CHECKING:
    from data_plane.proxy.exchange import Exchange

logger = logging.getLogger(__name__)

HOLD_LIMIT = 4 * 1024 * 1024  # body bytes held for plugins, at most


def change_body(
    plugins: tuple[BodyPlugin, ...],
    ctx: RequestContext,
    status: int,
    headers: list[bytes],
    body: bytes,
) -> bytes:
    """Return `body` as `plugins` change it, each in turn.

    A plugin that fails leaves the body as it found it: the client still
    gets a response.
    """
    for plugin in plugins:
        try:
            changed = plugin.body_filter(ctx, status, headers, body)
        except Exception:
            logger.exception("unexpected error in a plugin's body phase")
            continue
        if changed is not None:
            body = changed
    return body


class BodyHold:
    """Gather a response body for plugins, in place of the exchange.

    It takes the upstream connection's calls (a ResponseSink) while the
    body comes, and hands the response back to the exchange whole, or as
    it came once the body is too large to hold.
    """

    __slots__ = (
        "exchange",
        "plugins",
        "status",
        "reason",
        "lines",
        "length",
        "chunked",
        "answered_at",
        "pieces",
        "size",
    )

    def __init__(
        self,
        exchange: Exchange,
        plugins: tuple[BodyPlugin, ...],
        head: tuple[int, bytes, list[bytes], bytes | None, bool],
        answered_at: float,
    ) -> None:
        self.exchange = exchange
        self.plugins = plugins  # the ones that want this body
        # The head as the plugins' header filters left it, and its framing.
        self.status, self.reason, self.lines, self.length, self.chunked = head
        self.answered_at = answered_at  # when the upstream's head came
        self.pieces: list[bytes] = []
        self.size = 0

    def response_head(
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        length: bytes | None,
        chunked: bool,
    ) -> None:
        raise AssertionError("a held response got a second head")

    def response_body(self, chunk: bytes) -> None:
        self.pieces.append(chunk)
        self.size += len(chunk)
        if self.size > HOLD_LIMIT:
            self._let_go()

    def response_done(self, reusable: bool) -> None:
        exchange = self.exchange
        ctx = exchange.ctx
        assert ctx is not None, "body phase without a context"
        body = b"".join(self.pieces)
        self.pieces = []
        body = change_body(self.plugins, ctx, self.status, self.lines, body)
        exchange.response_head(
            self.status, self.reason, self.lines, b"%d" % len(body), False
        )
        exchange.response_body(body)
        exchange.response_done(reusable)

    def upstream_failed(self, timed_out: bool) -> None:
        # Nothing went to the client yet: the exchange can still answer.
        self.exchange.upstream_failed(timed_out)

    def upstream_paused(self, paused: bool) -> None:
        self.exchange.upstream_paused(paused)

    def _let_go(self) -> None:
        """Send the response unchanged from here on: it is too large to hold."""
        exchange = self.exchange
        conn = exchange.conn
        if conn is not None:
            conn.sink = exchange  # the rest goes straight to the client
        pieces, self.pieces = self.pieces, []
        exchange.response_head(
            self.status, self.reason, self.lines, self.length, self.chunked
        )
        for piece in pieces:
            exchange.response_body(piece)
