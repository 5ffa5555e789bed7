"""Retries on a dropped pooled connection, and the upstream write timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import start_data_plane

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class OneAnswerUpstream:
    """Answer the first request of each connection; drop the connection at the
    second without a word, as an upstream closing an idle keep-alive does."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if _read_head(conn):
                conn.sendall(_ANSWER)
            _read_head(conn)  # the second request: closed unanswered

    def close(self) -> None:
        self.server.close()


def _read_head(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


@pytest.fixture
def dropping() -> Iterator[OneAnswerUpstream]:
    upstream = OneAnswerUpstream()
    yield upstream
    upstream.close()


def _config(port: int, **service: Any) -> dict[str, Any]:
    return {
        "services": [
            {
                "name": "flaky",
                "url": f"http://127.0.0.1:{port}",
                **service,
                "routes": [{"name": "flaky", "paths": ["/flaky"]}],
            }
        ]
    }


def test_a_get_on_a_dropped_pooled_connection_is_retried_on_a_new_one(
    tmp_path: Path, dropping: OneAnswerUpstream
) -> None:
    with (
        start_data_plane(tmp_path, declarative=_config(dropping.port)) as node,
        httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as client,
    ):
        first = client.get("/flaky")
        second = client.get("/flaky")
    assert (first.status_code, first.text) == (200, "ok")
    assert (second.status_code, second.text) == (200, "ok")
    # The second request went out on the pooled connection, which the
    # upstream dropped, then again on a new one.
    assert dropping.connections == 2


def test_a_post_on_a_dropped_pooled_connection_is_not_retried(
    tmp_path: Path, dropping: OneAnswerUpstream
) -> None:
    with (
        start_data_plane(tmp_path, declarative=_config(dropping.port)) as node,
        httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as client,
    ):
        assert client.get("/flaky").status_code == 200
        reply = client.post("/flaky", content=b"once only")
    # Kong does not send a non-idempotent request twice.
    assert reply.status_code == 502
    assert dropping.connections == 1


def test_an_upstream_that_stops_reading_gets_kongs_504(tmp_path: Path) -> None:
    # Accepts, never reads: the request body fills the socket buffers and
    # the service's write timeout ends the exchange.
    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    config = _config(server.getsockname()[1], write_timeout=300, retries=0)
    body = b"x" * (32 * 1024 * 1024)
    try:
        with start_data_plane(tmp_path, declarative=config) as node:
            reply = httpx.post(
                node.proxy_url + "/flaky", content=body, timeout=deadline(30)
            )
            assert node.status()["counters"]["responses_5xx"] >= 1
    finally:
        for conn in held:
            conn.close()
        server.close()
    assert reply.status_code == 504
    assert reply.json() == {"message": "The upstream server is timing out"}
