"""The request-size-limiting plugin through a real node, as Kong behaves."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import DataPlaneProcess, start_data_plane, start_echo

TOO_LARGE = {"message": "Request size limit exceeded"}


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "request-size-limiting", "config": config}],
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlaneProcess]:
    with start_echo(tmp_path_factory.mktemp("echo")) as echo:
        config = {
            "services": [
                {
                    "name": "echo",
                    "url": echo.url,
                    "routes": [
                        _route("small", allowed_payload_size=10, size_unit="bytes"),
                        _route(
                            "kilobyte", allowed_payload_size=1, size_unit="kilobytes"
                        ),
                        _route("default"),
                        _route("required", require_content_length=True),
                    ],
                }
            ]
        }
        with start_data_plane(tmp_path_factory.mktemp("dp"), declarative=config) as dp:
            yield dp


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def _chunks(*pieces: bytes) -> Iterator[bytes]:
    yield from pieces


def test_a_body_at_the_limit_passes(client: httpx.Client) -> None:
    reply = client.post("/small", content=b"x" * 10)
    assert reply.status_code == 200
    assert reply.json()["body"] == "x" * 10


def test_a_content_length_over_the_limit_gets_413(client: httpx.Client) -> None:
    reply = client.post("/small", content=b"x" * 11)
    assert reply.status_code == 413
    assert reply.json() == TOO_LARGE


def test_the_size_unit_multiplies_the_limit(client: httpx.Client) -> None:
    assert client.post("/kilobyte", content=b"x" * 1024).status_code == 200
    assert client.post("/kilobyte", content=b"x" * 1025).status_code == 413


def test_the_default_limit_is_128_megabytes(node: DataPlaneProcess) -> None:
    head = b"POST /default HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    answer = _exchange(node, head % (128 * 1024 * 1024 + 1))
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_chunked_body_over_the_limit_gets_413(client: httpx.Client) -> None:
    reply = client.post("/small", content=_chunks(b"12345", b"678901"))
    assert reply.status_code == 413
    assert reply.json() == TOO_LARGE


def test_a_chunked_body_within_the_limit_streams_through(client: httpx.Client) -> None:
    reply = client.post("/small", content=_chunks(b"12345", b"67890"))
    assert reply.status_code == 200
    assert reply.json()["body"] == "1234567890"


def test_a_request_without_content_length_gets_411_when_required(
    client: httpx.Client,
) -> None:
    reply = client.get("/required")
    assert reply.status_code == 411
    assert reply.json() == {"message": "A valid Content-Length header is required"}
    assert client.post("/required", content=b"abc").status_code == 200
    assert client.post("/required", content=_chunks(b"abc")).status_code == 200


def test_an_expect_continue_request_over_the_limit_gets_417(
    node: DataPlaneProcess,
) -> None:
    head = (
        b"POST /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 11\r\n\r\n"
    )
    assert _exchange(node, head).startswith(b"HTTP/1.1 417 ")


def _exchange(node: DataPlaneProcess, head: bytes) -> bytes:
    """Send a request head alone; return the answer, up to its message."""
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(10))
        sock.sendall(head)
        answer = b""
        while b"Request size limit exceeded" not in answer:
            piece = sock.recv(65536)
            assert piece, answer
            answer += piece
    return answer
