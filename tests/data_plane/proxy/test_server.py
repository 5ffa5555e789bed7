"""The proxy over real sockets: routing, HTTP/1.1 framing, errors, timeouts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)
from tests.support.processes import free_port


def _config(echo: EchoProcess) -> dict[str, Any]:
    dead = free_port()  # nothing listens here
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": f"{echo.url}/base",
                "routes": [
                    {"name": "mock", "paths": ["/mock"]},
                    {"name": "keep", "paths": ["/keep"], "strip_path": False},
                    {
                        "name": "preserve",
                        "paths": ["/preserve"],
                        "preserve_host": True,
                    },
                ],
            },
            {
                "name": "root",
                "url": echo.url,
                "routes": [{"name": "root", "paths": ["/echo"]}],
            },
            {
                "name": "slow",
                "url": echo.url,
                "read_timeout": 300,
                "routes": [{"name": "slow", "paths": ["/delay"], "strip_path": False}],
            },
            {
                "name": "dead",
                "url": f"http://127.0.0.1:{dead}",
                "retries": 1,
                "routes": [{"name": "dead", "paths": ["/dead"]}],
            },
        ],
    }


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoProcess]:
    with start_echo(tmp_path_factory.mktemp("echo")) as process:
        yield process


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    tmp: Path = tmp_path_factory.mktemp("dp")
    with start_data_plane(tmp, declarative=_config(echo)) as process:
        yield process


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def _raw(node: DataPlaneProcess, data: bytes, *, until_close: bool = True) -> bytes:
    """Send raw bytes and read until the proxy closes the connection."""
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(5))
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_request_is_proxied_with_the_route_path_stripped(
    client: httpx.Client,
) -> None:
    reply = client.get("/mock/items?a=1&b=2")
    assert reply.status_code == 200
    echoed = reply.json()
    assert echoed["path"] == "/base/items"
    assert echoed["query"] == {"a": "1", "b": "2"}


def test_strip_path_false_keeps_the_route_path(client: httpx.Client) -> None:
    assert client.get("/keep/x").json()["path"] == "/base/keep/x"


def test_the_upstream_host_is_sent_unless_preserve_host(
    client: httpx.Client, echo: EchoProcess
) -> None:
    assert client.get("/mock").json()["headers"]["host"] == f"127.0.0.1:{echo.port}"
    preserved = client.get("/preserve", headers={"Host": "example.test"})
    assert preserved.json()["headers"]["host"] == "example.test"


def test_an_unmatched_request_gets_kongs_404(client: httpx.Client) -> None:
    reply = client.get("/nowhere")
    assert reply.status_code == 404
    assert reply.json() == {"message": "no Route matched with those values"}
    assert reply.headers["server"].startswith("portico/")


def test_forwarded_headers_describe_the_client_request(
    client: httpx.Client, node: DataPlaneProcess
) -> None:
    headers = client.get(
        "/mock/x", headers={"Host": "api.test:1234", "X-Forwarded-For": "10.0.0.1"}
    ).json()["headers"]
    assert headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "api.test"
    assert headers["x-forwarded-port"] == str(node.proxy_port)
    assert headers["x-forwarded-path"] == "/mock/x"
    assert headers["x-real-ip"] == "127.0.0.1"


def test_hop_by_hop_headers_are_not_forwarded(client: httpx.Client) -> None:
    headers = client.get(
        "/mock",
        headers={"Connection": "keep-alive, X-Private", "X-Private": "1", "TE": "x"},
    ).json()["headers"]
    assert "x-private" not in headers
    assert "te" not in headers


def test_proxied_responses_carry_via_and_latency_headers(
    client: httpx.Client,
) -> None:
    reply = client.get("/mock")
    assert reply.headers["via"].startswith("1.1 portico/")
    assert int(reply.headers["x-portico-upstream-latency"]) >= 0
    assert int(reply.headers["x-portico-proxy-latency"]) >= 0


def test_a_chunked_request_body_reaches_the_upstream(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:
        for index in range(50):
            yield f"piece {index};".encode()

    reply = client.post("/mock", content=pieces())
    assert reply.json()["body"] == "".join(f"piece {i};" for i in range(50))


def test_a_large_body_is_streamed_to_the_upstream(client: httpx.Client) -> None:
    body = b"z" * (3 * 1024 * 1024)
    reply = client.post("/mock", content=body)
    assert len(reply.json()["body"]) == len(body)


def test_a_chunked_response_is_relayed_in_chunks(client: httpx.Client) -> None:
    reply = client.get("/echo/stream/5")
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.text.splitlines() == [f'{{"chunk":{i}}}' for i in range(5)]


def test_a_large_response_is_relayed_whole(client: httpx.Client) -> None:
    size = 20 * 1024 * 1024
    with client.stream("GET", f"/echo/bytes/{size}") as reply:
        received = sum(len(chunk) for chunk in reply.iter_bytes())
    assert received == size


def test_a_head_request_gets_headers_and_no_body(node: DataPlaneProcess) -> None:
    reply = _raw(
        node,
        b"HEAD /mock HTTP/1.1\r\nHost: x\r\n\r\nGET /mock HTTP/1.1\r\n"
        b"Host: x\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert b"content-length" in first.lower()
    assert rest.startswith(b"HTTP/1.1 200")


def test_expect_100_continue_is_answered_before_the_body(
    node: DataPlaneProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(5))
        sock.sendall(
            b"POST /mock HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert b'"body":"hello"' in reply


def test_pipelined_requests_are_answered_in_order(node: DataPlaneProcess) -> None:
    requests = b"".join(
        b"GET /mock/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)
    )
    reply = _raw(
        node,
        requests + b"GET /mock/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    paths = [
        part.split(b'"path":"', 1)[1].split(b'"', 1)[0]
        for part in reply.split(b"HTTP/1.1 200 OK")[1:]
    ]
    assert paths == [b"/base/%d" % i for i in range(5)] + [b"/base/last"]


def test_garbage_gets_400_and_the_connection_is_closed(
    node: DataPlaneProcess,
) -> None:
    reply = _raw(node, b"\x00\x01garbage\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    assert reply.endswith(b'{"message":"Bad request"}')


def test_a_request_without_host_gets_400(node: DataPlaneProcess) -> None:
    reply = _raw(node, b"GET /mock HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")


def test_huge_headers_get_494(node: DataPlaneProcess) -> None:
    reply = _raw(
        node, b"GET /mock HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (b"a" * 20000)
    )
    assert reply.startswith(b"HTTP/1.1 494")
    assert reply.endswith(b'{"message":"Request header or cookie too large"}')


def test_endless_headers_get_494(node: DataPlaneProcess) -> None:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    reply = _raw(node, b"GET /mock HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 494")


def test_the_node_keeps_serving_after_bad_input(
    node: DataPlaneProcess, client: httpx.Client
) -> None:
    _raw(node, b"\xff\xfe not http")
    assert client.get("/mock").status_code == 200


def test_an_unreachable_upstream_gets_kongs_502(client: httpx.Client) -> None:
    reply = client.get("/dead")
    assert reply.status_code == 502
    assert reply.json() == {
        "message": "An invalid response was received from the upstream server"
    }


def test_a_slow_upstream_gets_kongs_504(client: httpx.Client) -> None:
    reply = client.get("/delay/2000")
    assert reply.status_code == 504
    assert reply.json() == {"message": "The upstream server is timing out"}


def test_a_fast_enough_upstream_is_waited_for(client: httpx.Client) -> None:
    assert client.get("/delay/50").status_code == 200


def test_keep_alive_serves_many_requests_on_one_connection(
    node: DataPlaneProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", node.proxy_port)) as sock:
        sock.settimeout(deadline(5))
        file = sock.makefile("rb")
        for index in range(20):
            sock.sendall(b"GET /mock/%d HTTP/1.1\r\nHost: x\r\n\r\n" % index)
            status = file.readline()
            length = 0
            while (line := file.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = file.read(length)
            assert status.startswith(b"HTTP/1.1 200")
            assert b'"/base/%d"' % index in body


def test_an_http_10_client_gets_a_body_ended_by_close(node: DataPlaneProcess) -> None:
    reply = _raw(node, b"GET /echo/stream/3 HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body.count(b"chunk") == 3


def test_an_absolute_form_target_is_routed_by_its_path(
    node: DataPlaneProcess,
) -> None:
    reply = _raw(
        node,
        b"GET http://api.test/mock/abs HTTP/1.1\r\nHost: other\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200")
    assert b'"x-forwarded-host":"api.test"' in reply
