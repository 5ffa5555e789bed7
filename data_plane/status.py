"""Serve the node's status API: `GET /status` and `GET /status/ready`.

It answers one request per connection and closes it: the API is read by
operators and health checks, never on the proxy path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from data_plane import __version__
from data_plane.runtime.switch import Switch

logger = logging.getLogger(__name__)

_HEAD_LIMIT = 8 * 1024
_READ_TIMEOUT = 10.0


class StatusServer:
    """Report the config being served and the link to the control plane."""

    def __init__(
        self,
        switch: Switch,
        node_id: str,
        control_plane: Callable[[], dict[str, Any]],
        *,
        source: Callable[[], str | None] | None = None,
        counters: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._switch = switch
        self._source = source
        self._counters = counters
        self._node_id = node_id
        self._control_plane = control_plane
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

    def status(self) -> dict[str, Any]:
        """Return the body of `GET /status`."""
        current = self._switch.current
        config: dict[str, Any] = {
            "version": None,
            "hash": None,
            "group_id": None,
            "applied_at": None,
            "compile_ms": None,
            "source": None,
        }
        if current is not None:
            config = {
                "version": current.snapshot.version,
                "hash": current.snapshot.hash,
                "group_id": current.snapshot.group_id,
                "applied_at": int(current.applied_at),
                # From the start of its compile to its swap, waits included.
                "compile_ms": round(current.compile_seconds * 1000, 1),
                "source": self._source() if self._source is not None else None,
            }
        return {
            "config": config,
            "control_plane": self._control_plane(),
            "counters": dict(self._counters()) if self._counters is not None else {},
            "node_id": self._node_id,
            "version": __version__,
        }

    def _answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if method not in ("GET", "HEAD"):
            known = path in ("/status", "/status/ready")
            return (
                (405, {"message": "Method not allowed"})
                if known
                else (
                    404,
                    {"message": "Not found"},
                )
            )
        if path == "/status":
            return 200, self.status()
        if path == "/status/ready":
            if self._switch.current is None:
                return 503, {"message": "no configuration loaded yet"}
            return 200, {"message": "ready"}
        return 404, {"message": "Not found"}

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(parts) != 3 or not parts[1].startswith("/"):
                status, body = 400, {"message": "Bad request"}
            else:
                status, body = self._answer(parts[0], parts[1])
            data = orjson.dumps(body)
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                % (status, _REASONS.get(status, b"Error"), len(data))
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
