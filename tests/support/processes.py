"""Start real Portico processes for tests and benchmarks.

:func:`start_control_plane` runs ``python -m control_plane`` on free ports in
a temporary prefix and waits for ``/health`` with a deadline; the returned
:class:`ControlPlaneProcess` stops it (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.conftest import deadline

ROOT = Path(__file__).resolve().parents[2]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """Return a TCP port that was free a moment ago (bound to port 0).

    The kernel may hand the same port to two binds in a row once the first
    socket is closed; a port this process returned before is never returned
    again, so the listeners of one test never collide with each other.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class Process:
    """A process started by a test, with its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        """Return what the process wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        """Stop with SIGTERM (SIGKILL after `timeout`); return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(deadline(timeout))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ControlPlaneProcess(Process):
    """A running control plane process and how to reach it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        admin_url: str,
        token: str,
        cluster_url: str,
        telemetry_url: str,
        prefix: Path,
        log: Path,
    ) -> None:
        super().__init__(process, log)
        self.admin_url = admin_url
        self.token = token
        self.cluster_url = cluster_url
        self.telemetry_url = telemetry_url
        self.prefix = prefix

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header of the organisation admin token."""
        return {"Authorization": f"Bearer {self.token}"}


def spawn_control_plane(
    args: list[str], env: dict[str, str] | None = None, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m control_plane ARGS` from the checkout."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "control_plane", *args],
        cwd=ROOT,
        env=full_env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until `url`/health answers 200, or fail when the process exits."""
    end = time.monotonic() + deadline(timeout)
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"control plane exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"control plane at {url} not healthy in {timeout}s")


def start_control_plane(
    tmp_path: Path,
    token: str | None = None,
    env: dict[str, str] | None = None,
    **options: str,
) -> ControlPlaneProcess:
    """Start a control plane on free ports under `tmp_path`; wait for /health.

    `token` becomes the organisation admin token (PORTICO_ADMIN_TOKEN; a
    random one by default), `env` adds environment variables, and `options`
    are extra command line options without the dashes (`log_level="debug"`
    becomes `--log-level debug`).
    """
    prefix = options.pop("prefix", None) or str(tmp_path / "cp")
    admin = options.pop("admin_listen", None) or f"127.0.0.1:{free_port()}"
    cluster = options.pop("cluster_listen", None) or f"127.0.0.1:{free_port()}"
    telemetry = (
        options.pop("cluster_telemetry_listen", None) or f"127.0.0.1:{free_port()}"
    )
    token = token or "kpat_" + secrets.token_hex(20)
    args = [
        "--prefix",
        prefix,
        "--admin-listen",
        admin,
        "--cluster-listen",
        cluster,
        "--cluster-telemetry-listen",
        telemetry,
    ]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    Path(prefix).mkdir(parents=True, exist_ok=True)
    log_path = Path(prefix) / f"cp-{admin.rsplit(':', 1)[1]}.log"
    with open(log_path, "ab") as log:
        extra = {**(env or {}), "PORTICO_ADMIN_TOKEN": token}
        process = spawn_control_plane(args, extra, log)
    cp = ControlPlaneProcess(
        process,
        admin_url=f"http://{admin}",
        token=token,
        cluster_url=options.get("cluster_public_url", f"https://{cluster}"),
        telemetry_url=options.get("telemetry_public_url", f"https://{telemetry}"),
        prefix=Path(prefix),
        log=log_path,
    )
    try:
        wait_healthy(cp.admin_url, process, 20)
    except Exception as exc:
        cp.stop()
        raise RuntimeError(f"{exc}\n{cp.output()}") from exc
    return cp
