"""`python -m bench` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.context import ROOT
from bench.tools import find_program


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_names_every_scenario() -> None:
    done = _bench("--help")
    assert done.returncode == 0
    for name in ("proxy", "propagation", "cp"):
        assert name in done.stdout


def test_unknown_scenario_is_refused() -> None:
    done = _bench("--only", "nonsense")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    find_program("nginx") is None or find_program("wrk") is None,
    reason="nginx and wrk are installed by python -m bench",
)
def test_one_short_proxy_run_writes_both_reports(tmp_path: Path) -> None:
    done = _bench(
        "--only",
        "proxy",
        "--runs",
        "1",
        "--duration",
        "1",
        "--no-install",
        "--out",
        str(tmp_path),
        "--work-dir",
        str(tmp_path / "work"),
        "--name",
        "smoke",
    )
    assert done.returncode == 0, done.stderr
    assert "run 1/1 nginx" in done.stderr

    report = json.loads((tmp_path / "smoke.json").read_text())
    (proxy,) = report["scenarios"]
    contenders = {metric["contender"] for metric in proxy["metrics"]}
    assert {"nginx", "portico basic-auth", "portico no plugin"} <= contenders
    assert proxy["targets"][0]["status"] in ("met", "not met")
    assert "## Targets" in (tmp_path / "smoke.md").read_text()
