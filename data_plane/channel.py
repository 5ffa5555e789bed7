"""Carry messages between a data plane node and its proxy workers.

A node started with ``--workers N`` talks to each worker process over one
Unix socket pair. A message is a head of five bytes (the body's length, four
bytes big-endian, then one byte naming its kind) followed by the body:

=========  ==============  =====================================================
kind       from            body
=========  ==============  =====================================================
CONFIG     node            a config frame, the same bytes the control plane
                           sends and ``config.cache`` keeps; or, to a worker
                           serving the node's previous config, the delta
                           frame from that config
LISTEN     node            ``{"host", "port"}``: start accepting proxy clients
STATUS     node            empty: report what you serve and your counters
SCRAPE     node            empty: send your Prometheus counters
TOTALS     node            ``{"counts"}``: rate-limiting's node-wide counts,
                           rows of ``[route, service, identifier, period,
                           window start, total, [count of each worker]]``
APPLIED    worker          ``{"version", "hash", "compile_ms", "swapped_at"}``
REFUSED    worker          ``{"version", "hash", "reason"}``: config not applied
LISTENING  worker          ``{"port"}``
FAILED     worker          ``{"errno", "reason"}``: cannot listen
REPORT     worker          ``{"config", "counters"}``, the answer to STATUS
METRICS    worker          ``{"series", "figures"}``, the answer to SCRAPE
TALLY      worker          ``{"counts"}``: its own rate-limiting counts, rows
                           of ``[route, service, identifier, period, window
                           start, count]``
=========  ==============  =====================================================

A worker answers CONFIG and LISTEN in the order it received them, and
STATUS and SCRAPE at once, each kind in order among themselves. While it
counts requests, a worker sends a TALLY ``SYNC_INTERVAL`` after its first
new count; the node sends the totals that changed to every worker in one
TOTALS, and a worker it starts again the totals of every current window
before anything else; a worker takes TOTALS at once. The socket
pair never leaves the machine and both ends are Portico, so a malformed
message is a bug: it raises :exc:`ChannelError`, and the process that
reads it ends the pair.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

from data_plane.plugins.rate_limiting import WINDOWS
from shared.errors import PorticoError
from shared.messages import MAX_CONFIG_SIZE

CONFIG = b"C"
LISTEN = b"L"
STATUS = b"S"
SCRAPE = b"P"
TOTALS = b"O"
APPLIED = b"A"
REFUSED = b"R"
LISTENING = b"U"
FAILED = b"F"
REPORT = b"T"
METRICS = b"M"
TALLY = b"Y"

_HEAD = struct.Struct(">IB")
_KINDS = {
    CONFIG,
    LISTEN,
    STATUS,
    SCRAPE,
    TOTALS,
    APPLIED,
    REFUSED,
    LISTENING,
    FAILED,
    REPORT,
    METRICS,
    TALLY,
}
# Both ends are Portico: the bound only catches a broken stream. A config
# from a declarative file is not bound by --cluster-max-payload, and its
# frame is smaller than the config it inflates to.
MAX_MESSAGE = MAX_CONFIG_SIZE


class ChannelError(PorticoError):
    """Raised when the peer sends a message that is not one of the channel's."""


class Channel:
    """One end of a node–worker socket pair: send and receive messages."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: Any) -> Channel:
        """Wrap a connected Unix socket."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, kind: bytes, body: bytes = b"") -> None:
        """Queue one message; it leaves as soon as the socket takes it."""
        if self._writer.is_closing():
            return
        self._writer.writelines([_HEAD.pack(len(body), kind[0]), body])

    def send_json(self, kind: bytes, value: Any) -> None:
        """Queue one message whose body is `value` as JSON."""
        self.send(kind, orjson.dumps(value))

    async def receive(self) -> tuple[bytes, bytes] | None:
        """Return the next (kind, body), or None once the peer has closed."""
        try:
            head = await self._reader.readexactly(_HEAD.size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        size, code = _HEAD.unpack(head)
        kind = bytes((code,))
        if kind not in _KINDS:
            raise ChannelError(f"unknown message kind {kind!r}")
        if size > MAX_MESSAGE:
            raise ChannelError(f"message of {size} bytes is over {MAX_MESSAGE}")
        try:
            body = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return kind, body

    def close(self) -> None:
        """Close this end; the peer reads the end of the stream."""
        self._writer.close()


def load(body: bytes) -> dict[str, Any]:
    """Decode a JSON message body that must be an object; ChannelError if not."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ChannelError(f"message body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ChannelError("message body is not a JSON object")
    return value


def load_counts(body: bytes, *, slot: int | None = None) -> list[list[Any]]:
    """Decode the rows of a TALLY, or of a TOTALS for the worker in `slot`.

    Raises ChannelError unless every row has the shape the table gives.
    """
    rows = load(body).get("counts")
    if not isinstance(rows, list):
        raise ChannelError("counts is not a list")
    width = 6 if slot is None else 7
    for row in rows:
        if not (
            isinstance(row, list)
            and len(row) == width
            and all(isinstance(part, str) for part in row[:4])
            and row[3] in WINDOWS
            and all(type(number) is int for number in row[4:6])
        ):
            raise ChannelError(f"not a row of counts: {row!r:.200}")
        if slot is not None:
            shares = row[6]
            if not (
                isinstance(shares, list)
                and len(shares) > slot
                and all(type(number) is int for number in shares)
            ):
                raise ChannelError(f"no share for worker {slot}: {row!r:.200}")
    return rows
