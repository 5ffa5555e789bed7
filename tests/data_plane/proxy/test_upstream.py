"""Upstream connections: TLS upstreams, reuse, and upstream misbehaviour."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import deadline
from tests.support.dataplane import start_data_plane


def _one_route(name: str, url: str, **service: Any) -> dict[str, Any]:
    """Return a declarative config: service `name` at `url`, route `/name`."""
    route = {"name": name, "paths": [f"/{name}"]}
    return {"services": [{"name": name, "url": url, **service, "routes": [route]}]}


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "up.crt", directory / "up.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {"path": self.path, "tls": isinstance(self.connection, ssl.SSLSocket)}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[int]:
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_https_upstream_is_reached_over_tls(
    tmp_path: Path, tls_upstream: int
) -> None:
    config = _one_route("tls", f"https://127.0.0.1:{tls_upstream}/secure")
    with start_data_plane(tmp_path, declarative=config) as node:
        reply = httpx.get(node.proxy_url + "/tls/x", timeout=deadline(10))
    assert reply.status_code == 200
    assert reply.json() == {"path": "/secure/x", "tls": True}


def test_tls_verify_refuses_an_untrusted_upstream_certificate(
    tmp_path: Path, tls_upstream: int
) -> None:
    config = _one_route(
        "tls", f"https://127.0.0.1:{tls_upstream}", tls_verify=True, retries=0
    )
    with start_data_plane(tmp_path, declarative=config) as node:
        reply = httpx.get(node.proxy_url + "/tls", timeout=deadline(10))
    assert reply.status_code == 502


def test_an_upstream_sending_garbage_gets_502(tmp_path: Path) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]

    def answer_garbage() -> None:
        conn, _ = upstream.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    config = _one_route("bad", f"http://127.0.0.1:{port}")
    with start_data_plane(tmp_path, declarative=config) as node, upstream:
        thread = threading.Thread(target=answer_garbage)
        thread.start()
        reply = httpx.get(node.proxy_url + "/bad", timeout=deadline(10))
        thread.join(deadline(10))
    assert reply.status_code == 502
    assert reply.json() == {
        "message": "An invalid response was received from the upstream server"
    }


def test_upstream_connections_are_reused(tmp_path: Path) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]
    accepted: list[int] = []

    def serve_three_on_one_connection() -> None:
        conn, _ = upstream.accept()
        accepted.append(1)
        with conn:
            file = conn.makefile("rb")
            for _ in range(3):
                while file.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    config = _one_route("one", f"http://127.0.0.1:{port}")
    with start_data_plane(tmp_path, declarative=config) as node, upstream:
        thread = threading.Thread(target=serve_three_on_one_connection)
        thread.start()
        with httpx.Client(timeout=deadline(10)) as http:
            replies = [http.get(node.proxy_url + "/one").text for _ in range(3)]
        thread.join(deadline(10))
    assert replies == ["ok", "ok", "ok"]
    assert accepted == [1]


def test_an_upstream_closing_an_idle_connection_fails_no_request(
    tmp_path: Path,
) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]
    first_closed = threading.Event()

    def serve_then_close_each() -> None:
        for _ in range(2):
            conn, _ = upstream.accept()
            # The file object holds the socket open: close both.
            with conn, conn.makefile("rb") as file:
                while file.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            first_closed.set()

    config = _one_route("idle", f"http://127.0.0.1:{port}", retries=0)
    with start_data_plane(tmp_path, declarative=config) as node, upstream:
        thread = threading.Thread(target=serve_then_close_each, daemon=True)
        thread.start()
        with httpx.Client(timeout=deadline(10)) as http:
            assert http.get(node.proxy_url + "/idle").text == "ok"
            assert first_closed.wait(deadline(10))
            assert http.get(node.proxy_url + "/idle").text == "ok"
        thread.join(deadline(10))


def test_a_body_after_a_204_is_dropped_with_the_connection(tmp_path: Path) -> None:
    """The 204 reaches the client; the bytes after it end the connection."""
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]
    accepted: list[int] = []

    def answer_with_a_stray_body() -> None:
        for _ in range(2):
            conn, _ = upstream.accept()
            accepted.append(1)
            with conn, conn.makefile("rb") as file:
                while file.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(b'HTTP/1.1 204 No Content\r\n\r\n{"stray": true}')
                file.readline()  # until the data plane closes it

    config = _one_route("sloppy", f"http://127.0.0.1:{port}")
    with start_data_plane(tmp_path, declarative=config) as node, upstream:
        thread = threading.Thread(target=answer_with_a_stray_body)
        thread.start()
        with httpx.Client(timeout=deadline(10)) as http:
            replies = [http.get(node.proxy_url + "/sloppy") for _ in range(2)]
        thread.join(deadline(10))
    assert [(r.status_code, r.content) for r in replies] == [(204, b"")] * 2
    assert accepted == [1, 1]  # the first connection was not reused
