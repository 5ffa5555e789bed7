"""The data plane process: startup errors, node id, readiness, reload, drain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    EchoProcess,
    start_data_plane,
    start_echo,
)
from tests.support.processes import ROOT, free_port


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "data_plane", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline(20),
    )


def _config(echo: EchoProcess, path: str = "/mock") -> dict[str, Any]:
    return {
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [{"name": "r", "paths": [path]}],
            }
        ]
    }


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start_echo(tmp_path_factory.mktemp("echo")) as process:
        yield process


def test_help_documents_every_option_and_the_environment() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for option in (
        "--cluster-control-plane",
        "--cluster-telemetry-endpoint",
        "--cluster-telemetry-interval",
        "--cluster-cert",
        "--cluster-cert-key",
        "--cluster-ca-cert",
        "--proxy-listen",
        "--status-listen",
        "--prefix",
        "--declarative-config",
        "--log-level",
        "--node-labels",
        "--workers",
    ):
        assert option in result.stdout
    assert "PORTICO_" in result.stdout


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run(
            "--proxy-listen",
            f"127.0.0.1:{port}",
            "--status-listen",
            f"127.0.0.1:{free_port()}",
            "--prefix",
            str(tmp_path),
        )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --proxy-listen: cannot listen on")


def test_an_unreadable_declarative_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run("--declarative-config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --declarative-config {tmp_path / 'absent.yaml'}: "
        "file not found or not readable"
    )


def test_a_missing_client_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run(
        "--cluster-control-plane",
        "https://127.0.0.1:1/cp/x",
        "--cluster-cert",
        str(tmp_path / "no.crt"),
        "--cluster-cert-key",
        str(tmp_path / "no.key"),
        "--prefix",
        str(tmp_path),
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: --cluster-cert ")


def test_an_invalid_declarative_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: [{paths: [/x], service: missing}]")
    result = _run("--declarative-config", str(path), "--prefix", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: --declarative-config:")


def test_the_node_id_is_kept_across_restarts(tmp_path: Path, echo: EchoProcess) -> None:
    prefix = str(tmp_path / "prefix")
    with start_data_plane(tmp_path, declarative=_config(echo), prefix=prefix) as a:
        first = a.status()["node_id"]
    with start_data_plane(tmp_path, declarative=_config(echo), prefix=prefix) as b:
        assert b.status()["node_id"] == first
    assert (Path(prefix) / "node_id").read_text().strip() == first


def test_a_node_without_config_is_not_ready(tmp_path: Path) -> None:
    with start_data_plane(tmp_path) as node:
        reply = httpx.get(node.status_url + "/status/ready")
        assert reply.status_code == 503
        assert node.status()["config"]["hash"] is None
        assert httpx.get(node.proxy_url + "/x").status_code == 404


def test_status_reports_the_config_being_served(
    tmp_path: Path, echo: EchoProcess
) -> None:
    with start_data_plane(tmp_path, declarative=_config(echo)) as node:
        status = node.status()
    assert status["config"]["version"] == 1
    assert len(status["config"]["hash"]) == 32
    assert status["config"]["group_id"] == "declarative"
    assert status["control_plane"] == {"connected": False, "last_error": None}
    assert status["version"]


def test_sighup_reloads_the_declarative_file(tmp_path: Path, echo: EchoProcess) -> None:
    with start_data_plane(tmp_path, declarative=_config(echo)) as node:
        assert node.reload(_config(echo, "/other")) == 2
        assert httpx.get(node.proxy_url + "/other").status_code == 200
        assert httpx.get(node.proxy_url + "/mock").status_code == 404


def test_a_bad_file_on_reload_keeps_the_old_config(
    tmp_path: Path, echo: EchoProcess
) -> None:
    with start_data_plane(tmp_path, declarative=_config(echo)) as node:
        assert node.declarative is not None
        node.declarative.write_text("services: [unclosed")
        node.process.send_signal(signal.SIGHUP)
        # The node logs the rejection; wait on that, then check it still serves.
        end = deadline(10)
        with httpx.Client(timeout=end) as http:
            while "declarative config rejected" not in node.output():
                assert http.get(node.proxy_url + "/mock").status_code == 200
        assert node.status()["config"]["version"] == 1


def test_reloads_under_concurrent_requests_lose_none(
    tmp_path: Path, echo: EchoProcess
) -> None:
    config = _config(echo)
    with start_data_plane(tmp_path, declarative=config) as node:
        statuses: list[int] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
                while not stop.is_set():
                    try:
                        statuses.append(
                            http.post("/mock", content=b"x" * 1000).status_code
                        )
                    except httpx.HTTPError as exc:
                        failures.append(exc)

        def answered(count: int) -> None:
            # Requests must be in flight around every reload, however slowly
            # a loaded machine starts the threads.
            end = time.monotonic() + deadline(10)
            while len(statuses) + len(failures) < count:
                assert time.monotonic() < end, "the requests never got answers"
                time.sleep(0.01)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            answered(4)
            for index in range(10):
                config["services"][0]["name"] = f"echo-{index}"
                node.reload(config)
            answered(len(statuses) + 4)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert not failures
    assert statuses and set(statuses) == {200}


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    # The test plays the upstream, so it knows when the request is in flight.
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]
    config = {
        "services": [
            {
                "name": "held",
                "url": f"http://127.0.0.1:{port}",
                "routes": [{"name": "r", "paths": ["/held"]}],
            }
        ]
    }
    node = start_data_plane(tmp_path, declarative=config)
    result: list[int] = []

    def client() -> None:
        reply = httpx.get(node.proxy_url + "/held", timeout=deadline(10))
        result.append(reply.status_code)

    thread = threading.Thread(target=client)
    thread.start()
    upstream.settimeout(deadline(10))
    conn, _ = upstream.accept()
    with conn, upstream:
        conn.settimeout(deadline(10))
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        node.process.send_signal(signal.SIGTERM)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        thread.join(deadline(10))
    assert node.process.wait(deadline(10)) == 0
    assert result == [200]
    assert "shutting down" in node.output()


def test_a_client_certificate_that_is_not_pem_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate\n")
    (tmp_path / "bad.key").write_text("not a key\n")
    result = _run(
        "--cluster-control-plane",
        f"https://127.0.0.1:{free_port()}/cp/group",
        "--cluster-cert",
        str(tmp_path / "bad.crt"),
        "--cluster-cert-key",
        str(tmp_path / "bad.key"),
        "--proxy-listen",
        f"127.0.0.1:{free_port()}",
        "--status-listen",
        f"127.0.0.1:{free_port()}",
        "--prefix",
        str(tmp_path),
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --cluster-cert {tmp_path / 'bad.crt'} and ")
    assert "not a PEM certificate and its private key" in line
    # Refused before listening: nothing was logged about the proxy.
    assert "proxy on" not in result.stderr


def test_status_counts_the_requests_answered_by_status_class(
    tmp_path: Path, echo: EchoProcess
) -> None:
    with start_data_plane(tmp_path, declarative=_config(echo)) as node:
        assert httpx.get(node.proxy_url + "/mock/request").status_code == 200
        for _ in range(2):
            assert httpx.get(node.proxy_url + "/nowhere").status_code == 404
        counters = node.status()["counters"]
    assert counters["responses_2xx"] == 1
    assert counters["responses_4xx"] == 2
    assert counters["requests"] == 3
