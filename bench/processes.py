"""Start, pin, await and stop the processes a scenario needs.

Every process writes its output to a log file in the work directory, so a
failure can be reported with the last lines of that log. Waiting always has a
deadline; nothing guesses with a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

POLL_INTERVAL = 0.02


class ProcessError(RuntimeError):
    """Raised when a process exits early or is not ready before its deadline."""


@dataclass(frozen=True)
class Pinning:
    """Which CPU runs the contender and which runs the load and the upstream."""

    enabled: bool
    contender_cpu: int
    load_cpu: int
    reason: str

    def prefix(self, cpu: int | None) -> list[str]:
        """Return the `taskset` prefix that pins a command to `cpu`, if pinning."""
        if not self.enabled or cpu is None:
            return []
        return ["taskset", "-c", str(cpu)]


def detect_pinning(taskset: str | None) -> Pinning:
    """Pin the contender to CPU 1 and the load to CPU 0 when the machine allows."""
    if taskset is None:
        return Pinning(False, 1, 0, "taskset not found; processes not pinned")
    allowed = os.sched_getaffinity(0)
    if not {0, 1} <= allowed:
        return Pinning(
            False, 1, 0, f"CPUs 0 and 1 not both available (have {sorted(allowed)})"
        )
    return Pinning(True, 1, 0, "contender on CPU 1, wrk and upstream on CPU 0")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Service:
    """A long-running child process with its log file; stop it when done."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        cpu: int | None = None,
        pinning: Pinning | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        prefix = pinning.prefix(cpu) if pinning is not None else []
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        """Return the last line of the process's output and where the rest is.

        For a Python traceback the last line is the exception and its message.
        """
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        last = lines[-1].strip() if lines else "no output"
        return f"{last} (log: {self.log_path})"

    def check_alive(self) -> None:
        """Raise ProcessError if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise ProcessError(
                f"{self.name} exited with code {code}: {self.log_tail()}"
            )

    def signal_group(self, number: int) -> None:
        """Send a signal to the process and every process it started.

        The child leads its own session (see __init__), so its process group
        holds exactly what it started.
        """
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after `timeout`)."""
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait(timeout)


def stop_all(services: Sequence[Service], timeout: float = 5.0) -> None:
    """Terminate many processes at once, then wait for each (SIGKILL if late)."""
    for service in services:
        service.signal_group(signal.SIGTERM)
    for service in services:
        service.stop(timeout)


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    services: Sequence[Service] = (),
) -> None:
    """Poll `ready` until it returns true; fail on the deadline or a dead service."""
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            service.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            tails = "; ".join(f"{s.name}: {s.log_tail()}" for s in services)
            raise ProcessError(f"{what} not ready after {timeout:.0f} s. {tails}")
        time.sleep(POLL_INTERVAL)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Return whether a GET on `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False
