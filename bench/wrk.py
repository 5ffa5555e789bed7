"""Drive wrk against one URL and read its summary back as numbers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Pinning

SCRIPT = Path(__file__).with_name("wrk_report.lua")
_SHORTEST = 1.0  # seconds a background load runs at least
MARKER = "PORTICO_WRK "


class LoadError(RuntimeError):
    """Raised when wrk fails or its run is not a valid measurement."""


@dataclass(frozen=True)
class LoadResult:
    """wrk's summary of one run; latencies in milliseconds."""

    requests: int
    seconds: float
    errors: int
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def parse_summary(output: str) -> LoadResult:
    """Return the summary that wrk_report.lua printed into `output`."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            return LoadResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                errors=sum(
                    int(data[key])
                    for key in (
                        "connect_errors",
                        "read_errors",
                        "write_errors",
                        "timeouts",
                    )
                ),
                non_2xx=int(data["status_errors"]),
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
            )
    raise LoadError(f"no summary in wrk output: {output.strip()[-200:]!r}")


def run_load(
    wrk: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    pinning: Pinning,
    headers: Mapping[str, str] | None = None,
    script: Path = SCRIPT,
) -> LoadResult:
    """Run one closed-loop wrk load on the load CPU and return its summary.

    `script` is the wrk Lua script; another one than SCRIPT must print the
    same summary line (see :func:`rotating_script`).

    A run in which more than 1 % of responses were not 2xx, or more than
    0.1 % failed at the socket, measured something else than the proxy path:
    it raises.
    """
    argv = _argv(wrk, url, connections, seconds, pinning, headers, script)
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=seconds + 30
    )
    if done.returncode != 0:
        raise LoadError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")

    result = parse_summary(done.stdout)
    if result.requests == 0:
        raise LoadError(f"no request completed against {url}")
    if result.non_2xx > result.requests / 100:
        raise LoadError(f"{result.non_2xx} of {result.requests} responses were not 2xx")
    if result.errors > result.requests / 1000:
        raise LoadError(f"{result.errors} socket errors or timeouts")
    return result


def _argv(
    wrk: str,
    url: str,
    connections: int,
    seconds: float,
    pinning: Pinning,
    headers: Mapping[str, str] | None,
    script: Path,
) -> list[str]:
    argv = [
        *pinning.prefix(pinning.load_cpu),
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    return argv


class BackgroundLoad:
    """A wrk load that runs until stopped, while the caller does something else.

    `limit` bounds it in time should the caller never stop it. A load runs
    for a second at least: wrk sets up its connections before it handles
    Ctrl-C, and a stop in between would lose its summary.
    """

    def __init__(
        self,
        wrk: str,
        url: str,
        *,
        connections: int,
        pinning: Pinning,
        headers: Mapping[str, str] | None = None,
        script: Path = SCRIPT,
        limit: float = 600.0,
    ) -> None:
        argv = _argv(wrk, url, connections, limit, pinning, headers, script)
        self._process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._started = time.monotonic()

    def stop(self, timeout: float = 30.0) -> LoadResult:
        """Stop wrk as Ctrl-C does and return its summary, failures included."""
        time.sleep(max(0.0, self._started + _SHORTEST - time.monotonic()))
        self._process.send_signal(signal.SIGINT)
        try:
            output, errors = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise LoadError("wrk did not stop when asked") from None
        if self._process.returncode != 0:
            raise LoadError(
                f"wrk exited with {self._process.returncode}: {errors.strip()}"
            )
        return parse_summary(output)


def rotating_script(requests: Sequence[tuple[str, str]], path: Path) -> Path:
    """Write a wrk script sending `(path, Host header)` requests in turn.

    The requests go out in turn, from a random starting point; they are
    formatted once, when wrk starts. Returns `path`.
    """
    entries = ",\n".join(
        f"  {{{_lua_string(target)}, {_lua_string(host)}}}" for target, host in requests
    )
    path.write_text(
        "-- Generated by bench/wrk.py: rotate through fixed requests.\n"
        f"local targets = {{\n{entries}\n}}\n"
        "local formatted = {}\n"
        "local position = 0\n"
        "init = function(args)\n"
        "  for i, t in ipairs(targets) do\n"
        '    formatted[i] = wrk.format("GET", t[1], {Host = t[2]})\n'
        "  end\n"
        "  position = math.random(#formatted) - 1\n"
        "end\n"
        "request = function()\n"
        "  position = position % #formatted + 1\n"
        "  return formatted[position]\n"
        "end\n" + SCRIPT.read_text()
    )
    return path


def _lua_string(text: str) -> str:
    """Return `text` as a Lua string literal (paths and host names only)."""
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"not a plain path or host: {text!r}")
    return f'"{text}"'
