"""The benchmark's HTTP/1.1 client against a real server on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bench.client import ClientError, Connection

Reply = Callable[[bytes], bytes]


async def _serve(reply: Reply) -> tuple[asyncio.Server, list[int]]:
    """Start a server answering each request head with `reply(head)`."""
    connections: list[int] = []

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                writer.write(reply(head + body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[int, list[int]]]:
    def reply(request: bytes) -> bytes:
        body = request
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    server, connections = await _serve(reply)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, connections


async def test_requests_share_one_kept_alive_connection(
    echo_server: tuple[int, list[int]],
) -> None:
    port, connections = echo_server
    client = Connection(port)
    first = await client.request("GET", "/a")
    second = await client.request("GET", "/b")
    await client.close()
    assert first.body.startswith(b"GET /a HTTP/1.1")
    assert second.body.startswith(b"GET /b HTTP/1.1")
    assert len(connections) == 1


async def test_token_and_json_body_are_sent(echo_server: tuple[int, list[int]]) -> None:
    port, _ = echo_server
    client = Connection(port, token="kpat_x")
    response = await client.request("PATCH", "/s", {"tags": ["a"]})
    await client.close()
    assert b"Authorization: Bearer kpat_x" in response.body
    assert response.body.endswith(b'{"tags":["a"]}')


async def test_chunked_body_is_reassembled() -> None:
    def reply(_: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
        )

    server, _ = await _serve(reply)
    async with server:
        client = Connection(server.sockets[0].getsockname()[1])
        response = await client.request("GET", "/")
        await client.close()
    assert response.body == b"abcde"


async def test_response_cut_short_by_the_server_is_an_error() -> None:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        client = Connection(server.sockets[0].getsockname()[1])
        with pytest.raises(ClientError):
            await client.request("GET", "/", timeout=5)
        await client.close()
