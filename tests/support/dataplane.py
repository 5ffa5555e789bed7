"""Start real data plane and echo upstream processes for tests.

:func:`start_data_plane` runs ``python -m data_plane`` on free ports and
waits for its status API (and, with a declarative config, for readiness);
:func:`start_echo` runs ``python -m echo_upstream``. Both return handles that
stop the process (SIGTERM, then SIGKILL) on ``stop()`` or on exit of a
``with`` block.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import deadline
from tests.support.processes import ROOT, Process, free_port


class EchoProcess(Process):
    """A running echo upstream."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        super().__init__(process, log)
        self.host = "127.0.0.1"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


class DataPlaneProcess(Process):
    """A running data plane node."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log: Path,
        *,
        proxy_port: int,
        status_port: int,
        prefix: Path,
        declarative: Path | None,
    ) -> None:
        super().__init__(process, log)
        self.proxy_port = proxy_port
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        self.status_url = f"http://127.0.0.1:{status_port}"
        self.prefix = prefix
        self.declarative = declarative

    def status(self) -> dict[str, Any]:
        """Return the body of GET /status."""
        with urllib.request.urlopen(self.status_url + "/status", timeout=5) as reply:
            body: dict[str, Any] = json.loads(reply.read())
            return body

    def reload(self, config: Mapping[str, Any] | None = None) -> int:
        """Rewrite the declarative file (if given), SIGHUP, wait for the new hash.

        Returns the config version being served afterwards.
        """
        assert self.declarative is not None, "node runs without a declarative file"
        before = self.status()["config"]["hash"]
        if config is not None:
            write_config(self.declarative, config)
        self.process.send_signal(signal.SIGHUP)
        if config is None:
            return int(self.status()["config"]["version"])
        end = time.monotonic() + deadline(10)
        while time.monotonic() < end:
            status = self.status()["config"]
            if status["hash"] != before:
                return int(status["version"])
            time.sleep(0.01)
        raise TimeoutError(f"config not reloaded in time\n{self.output()}")


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write a declarative config as JSON (a subset of YAML)."""
    path.write_text(json.dumps(config, indent=2))


def _spawn(module: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_http(url: str, process: Process, want: tuple[int, ...]) -> None:
    """Wait until `url` answers one of `want`, or fail if the process exits."""
    end = time.monotonic() + deadline(20)
    while time.monotonic() < end:
        if process.process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.process.returncode}\n{process.output()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status in want:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in want:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    process.stop()
    raise TimeoutError(f"{url} did not answer in time\n{process.output()}")


def start_echo(tmp_path: Path) -> EchoProcess:
    """Start the echo upstream on a free port and wait until it answers."""
    port = free_port()
    log = tmp_path / f"echo-{port}.log"
    process = _spawn("echo_upstream", ["--listen", f"127.0.0.1:{port}"], log)
    echo = EchoProcess(process, log, port)
    _wait_http(echo.url + "/status/200", echo, (200,))
    return echo


def start_data_plane(
    tmp_path: Path,
    *,
    declarative: Mapping[str, Any] | Path | None = None,
    control_plane: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
    wait_ready: bool | None = None,
    **opts: str,
) -> DataPlaneProcess:
    """Start a data plane node on free ports under `tmp_path`.

    `declarative` is a config mapping (written to a file) or a file path.
    `opts` are more options without dashes (`log_level="debug"`). Waits for
    the status API; with a declarative config also until the node is ready.
    """
    proxy_port, status_port = free_port(), free_port()
    prefix = Path(opts.pop("prefix", None) or tmp_path / f"dp-{proxy_port}")
    prefix.mkdir(parents=True, exist_ok=True)
    args = [
        "--proxy-listen",
        f"127.0.0.1:{proxy_port}",
        "--status-listen",
        f"127.0.0.1:{status_port}",
        "--prefix",
        str(prefix),
    ]
    file = None
    if isinstance(declarative, Path):
        file = declarative
    elif declarative is not None:
        file = prefix / "kong.json"
        write_config(file, declarative)
    if file is not None:
        args += ["--declarative-config", str(file)]
    for option, value in (
        ("--cluster-control-plane", control_plane),
        ("--cluster-cert", cert),
        ("--cluster-cert-key", key),
        ("--cluster-ca-cert", ca),
    ):
        if value is not None:
            args += [option, str(value)]
    for name, value in opts.items():
        args += [f"--{name.replace('_', '-')}", value]

    log = prefix / "dp.log"
    node = DataPlaneProcess(
        _spawn("data_plane", args, log),
        log,
        proxy_port=proxy_port,
        status_port=status_port,
        prefix=prefix,
        declarative=file,
    )
    ready = file is not None if wait_ready is None else wait_ready
    path = "/status/ready" if ready else "/status"
    _wait_http(node.status_url + path, node, (200,))
    return node


@contextmanager
def proxy_to_echo(
    tmp_path: Path, routes: list[dict[str, Any]]
) -> Iterator[httpx.Client]:
    """Serve `routes` of one service in front of an echo upstream.

    Yields an HTTP client of the data plane's proxy; both processes stop
    when the block ends.
    """
    for name in ("echo", "dp"):
        (tmp_path / name).mkdir(exist_ok=True)
    with start_echo(tmp_path / "echo") as echo:
        config = {"services": [{"name": "echo", "url": echo.url, "routes": routes}]}
        with start_data_plane(tmp_path / "dp", declarative=config) as node:
            with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
                yield http
