"""Talk HTTP/1.1 over one kept-alive connection, with the standard library only.

The propagation scenario polls many status endpoints every millisecond or so;
a persistent connection per endpoint keeps each poll to one round trip. Only
what Portico's own servers send is understood: Content-Length or chunked
bodies, no upgrades, no pipelining.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

MAX_HEAD = 64 * 1024


class ClientError(RuntimeError):
    """Raised when the server's answer cannot be read as HTTP/1.1."""


@dataclass(frozen=True)
class Response:
    """A complete response: status, lowercased headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Connection:
    """One persistent connection to 127.0.0.1:port; reopened when closed."""

    def __init__(self, port: int, *, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0
    ) -> Response:
        """Send one request (a JSON body if given) and read the whole response."""
        return await asyncio.wait_for(self._exchange(method, path, body), timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    async def _exchange(self, method: str, path: str, body: Any) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                "127.0.0.1", self.port, limit=MAX_HEAD
            )
        assert self._reader is not None, "connection has a reader once open"

        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        if self.token is not None:
            head.append(f"Authorization: Bearer {self.token}")
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)

        try:
            response = await self._read(method)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            await self.close()
            raise ClientError(f"connection to port {self.port} lost") from error
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def _read(self, method: str) -> Response:
        assert self._reader is not None, "reading needs an open connection"
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ClientError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()

        status = int(parts[1])
        if method == "HEAD" or status in (204, 304):
            return Response(status, headers, b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return Response(status, headers, await self._read_chunked())
        length = int(headers.get("content-length", "0"))
        return Response(status, headers, await self._reader.readexactly(length))

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None, "reading needs an open connection"
        chunks: list[bytes] = []
        while True:
            size_line = await self._reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while await self._reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
