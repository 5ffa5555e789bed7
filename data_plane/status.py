"""Serve the node's status API: `/status`, `/status/ready` and `/metrics`.

`GET /metrics` answers the node's Prometheus metrics in text format
(:mod:`data_plane.metrics`), summed over its worker processes. The API
answers one request per connection and closes it: it is read by operators,
health checks and scrapers, never on the proxy path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from data_plane.metrics import CONTENT_TYPE
from data_plane.runtime.compiled import CompiledConfig

logger = logging.getLogger(__name__)

_HEAD_LIMIT = 8 * 1024
_READ_TIMEOUT = 10.0
_PATHS = ("/status", "/status/ready", "/metrics")


def served_config(current: CompiledConfig | None) -> dict[str, Any]:
    """Return what the status API says about one compiled config (or none)."""
    if current is None:
        return {
            "version": None,
            "hash": None,
            "group_id": None,
            "applied_at": None,
            "compile_ms": None,
        }
    return {
        "version": current.snapshot.version,
        "hash": current.snapshot.hash,
        "group_id": current.snapshot.group_id,
        "applied_at": int(current.applied_at),
        # From the start of its compile to its swap, waits included.
        "compile_ms": round(current.compile_seconds * 1000, 1),
    }


class StatusServer:
    """Answer the status API with the bodies the node puts together."""

    def __init__(
        self,
        status: Callable[[], Awaitable[dict[str, Any]]],
        ready: Callable[[], bool],
        metrics: Callable[[], Awaitable[str]],
    ) -> None:
        self._status = status
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port; OSError if the address cannot be used."""
        self._server = await asyncio.start_server(self._handle, host, port)

    @property
    def port(self) -> int:
        """Return the port actually listened on."""
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, dict[str, Any] | str]:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if method not in ("GET", "HEAD"):
            known = path in _PATHS
            return (
                (405, {"message": "Method not allowed"})
                if known
                else (
                    404,
                    {"message": "Not found"},
                )
            )
        if path == "/status":
            return 200, await self._status()
        if path == "/status/ready":
            if not self._ready():
                return 503, {"message": "no configuration loaded yet"}
            return 200, {"message": "ready"}
        if path == "/metrics":
            return 200, await self._metrics()
        return 404, {"message": "Not found"}

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            body: dict[str, Any] | str
            if len(parts) != 3 or not parts[1].startswith("/"):
                status, body = 400, {"message": "Bad request"}
            else:
                status, body = await self._answer(parts[0], parts[1])
            if isinstance(body, str):
                data, kind = body.encode(), CONTENT_TYPE.encode()
            else:
                data, kind = orjson.dumps(body), b"application/json"
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                % (status, _REASONS.get(status, b"Error"), kind, len(data))
            )
            if parts[0] != "HEAD":
                writer.write(data)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent an oversized head
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    503: b"Service Unavailable",
}
