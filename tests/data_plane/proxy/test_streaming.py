"""Bodies stream through the proxy both ways; what a scripted upstream proves.

The upstream here is a plain socket server run by the test, so that the test
decides when each piece of a body is sent and sees when each piece arrives.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import deadline
from tests.support.dataplane import DataPlaneProcess, start_data_plane

Script = Callable[[socket.socket], None]


class ScriptedUpstream:
    """Accept connections and run the current script on each, in a thread."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script: Script | None = None
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by the test
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(deadline(10))
            try:
                assert self.script is not None, "a test sets the script first"
                self.script(conn)
            except BaseException as exc:  # reported by the test that failed
                self.errors.append(exc)

    def close(self) -> None:
        self.sock.close()


def read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of a head; return it and what followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_until(conn: socket.socket, data: bytes, marker: bytes) -> bytes:
    """Keep reading until `marker` has arrived; return everything read."""
    while marker not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}")
        data += chunk
    return data


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedUpstream
) -> Iterator[DataPlaneProcess]:
    config: dict[str, Any] = {
        "services": [
            {
                "name": "scripted",
                "url": f"http://127.0.0.1:{upstream.port}",
                "routes": [{"name": "all", "paths": ["/"]}],
            }
        ]
    }
    tmp: Path = tmp_path_factory.mktemp("dp")
    with start_data_plane(tmp, declarative=config) as process:
        yield process


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(10))
        yield sock


def test_a_response_body_is_relayed_before_the_upstream_finishes_it(
    upstream: ScriptedUpstream, client: socket.socket
) -> None:
    release = threading.Event()

    def script(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        assert release.wait(deadline(10)), "the client never saw the first piece"
        conn.sendall(b"4\r\nlast\r\n0\r\n\r\n")

    upstream.script = script
    client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    seen = read_until(client, b"", b"first")
    assert b"last" not in seen
    release.set()
    seen = read_until(client, seen, b"4\r\nlast\r\n0\r\n\r\n")
    assert not upstream.errors


def test_a_content_length_body_reaches_the_upstream_before_the_client_ends_it(
    upstream: ScriptedUpstream, client: socket.socket
) -> None:
    first_piece = threading.Event()

    def script(conn: socket.socket) -> None:
        head, body = read_head(conn)
        assert b"content-length: 10" in head.lower()
        body = read_until(conn, body, b"hello")
        first_piece.set()
        body = read_until(conn, body, b"world")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    upstream.script = script
    client.sendall(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"
    )
    assert first_piece.wait(deadline(10)), "the first piece was held back"
    client.sendall(b"world")
    reply = read_until(client, b"", b"ok")
    assert reply.startswith(b"HTTP/1.1 200")
    assert not upstream.errors


def test_a_chunked_body_reaches_the_upstream_before_the_client_ends_it(
    upstream: ScriptedUpstream, client: socket.socket
) -> None:
    first_chunk = threading.Event()

    def script(conn: socket.socket) -> None:
        head, body = read_head(conn)
        assert b"transfer-encoding: chunked" in head.lower()
        body = read_until(conn, body, b"hello")
        first_chunk.set()
        read_until(conn, body, b"0\r\n\r\n")
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    upstream.script = script
    client.sendall(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
    )
    assert first_chunk.wait(deadline(10)), "the first chunk was held back"
    client.sendall(b"5\r\nworld\r\n0\r\n\r\n")
    reply = read_until(client, b"", b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 201")
    assert not upstream.errors


def test_hop_by_hop_response_headers_are_not_relayed(
    upstream: ScriptedUpstream, client: socket.socket
) -> None:
    def script(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
            b"Connection: keep-alive, X-Upstream-Secret\r\n"
            b"Keep-Alive: timeout=5\r\nX-Upstream-Secret: 1\r\n"
            b"Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\nok"
        )

    upstream.script = script
    client.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = read_until(client, b"", b"\r\n\r\nok")
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert b"x-kept: yes" in head
    assert b"x-upstream-secret" not in head
    assert b"keep-alive" not in head
    assert b"proxy-connection" not in head
    assert not upstream.errors


def test_a_malformed_content_length_gets_400_and_the_connection_closes(
    client: socket.socket,
) -> None:
    client.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    reply = b""
    while chunk := client.recv(65536):
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    assert reply.endswith(b'{"message":"Bad request"}')
