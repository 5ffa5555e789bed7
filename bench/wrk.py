"""Drive wrk against one URL and read its summary back as numbers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Pinning

SCRIPT = Path(__file__).with_name("wrk_report.lua")
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
) -> LoadResult:
    """Run one closed-loop wrk load on the load CPU and return its summary.

    A run in which more than 1 % of responses were not 2xx, or more than
    0.1 % failed at the socket, measured something else than the proxy path:
    it raises.
    """
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
        str(SCRIPT),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)

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
