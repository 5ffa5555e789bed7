"""The echo upstream describes requests, and serves status, delay, stream."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import EchoProcess, start_echo
from tests.support.processes import ROOT


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoProcess]:
    with start_echo(tmp_path_factory.mktemp("echo")) as process:
        yield process


@pytest.fixture
def client(echo: EchoProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=echo.url, timeout=deadline(10)) as http:
        yield http


def test_a_request_is_echoed_as_json(client: httpx.Client, echo: EchoProcess) -> None:
    reply = client.post(
        "/request/a?x=1&x=2&y=3", content=b"hello", headers={"X-Test": "yes"}
    )
    body = reply.json()
    assert set(body) == {"method", "url", "path", "query", "headers", "body", "client"}
    assert body["method"] == "POST"
    assert body["path"] == "/request/a"
    assert body["url"] == f"http://127.0.0.1:{echo.port}/request/a?x=1&x=2&y=3"
    assert body["query"] == {"x": ["1", "2"], "y": "3"}
    assert body["headers"]["x-test"] == "yes"
    assert body["body"] == "hello"
    assert body["client"]["ip"] == "127.0.0.1"


def test_a_browser_gets_an_html_page(client: httpx.Client) -> None:
    reply = client.get("/anything", headers={"Accept": "text/html,*/*;q=0.8"})
    assert reply.headers["content-type"].startswith("text/html")
    assert "<h1>GET /anything</h1>" in reply.text


def test_json_is_preferred_when_the_client_ranks_it_higher(
    client: httpx.Client,
) -> None:
    reply = client.get("/x", headers={"Accept": "application/json, text/html;q=0.5"})
    assert reply.headers["content-type"] == "application/json"


def test_status_paths_answer_with_that_status(client: httpx.Client) -> None:
    assert client.get("/status/418").status_code == 418


def test_stream_paths_answer_in_chunks(client: httpx.Client) -> None:
    reply = client.get("/stream/3")
    assert reply.headers["transfer-encoding"] == "chunked"
    assert len(reply.text.splitlines()) == 3


def test_bytes_paths_answer_with_that_many_bytes(client: httpx.Client) -> None:
    assert len(client.get("/bytes/100000").content) == 100000


def test_reply_answers_the_request_body_as_json(client: httpx.Client) -> None:
    reply = client.post("/reply", content=b'{"a": 1}')
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == "8"
    assert reply.content == b'{"a": 1}'


def test_reply_takes_its_type_and_encoding_from_the_query(
    client: httpx.Client,
) -> None:
    body = gzip.compress(b"plain")
    reply = client.post("/reply?type=text/plain&encoding=gzip", content=body)
    assert reply.headers["content-type"] == "text/plain"
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.content == b"plain"  # httpx inflates what was sent as it came


def test_reply_can_answer_in_chunks(client: httpx.Client) -> None:
    body = b"x" * 200_000
    reply = client.post("/reply?chunked=1", content=body)
    assert reply.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in reply.headers
    assert reply.content == body


def test_delay_paths_answer_after_the_delay(client: httpx.Client) -> None:
    reply = client.get("/delay/100")
    assert reply.status_code == 200
    assert reply.elapsed.total_seconds() >= 0.1


def test_help_names_the_environment_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "echo_upstream", "--help"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=deadline(20),
    )
    assert result.returncode == 0
    assert "PORTICO_ECHO_LISTEN" in result.stdout


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "echo_upstream", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            timeout=deadline(20),
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: --listen: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )


def test_sigterm_stops_the_echo_upstream_cleanly(tmp_path: Path) -> None:
    echo = start_echo(tmp_path)
    assert echo.stop() == 0
