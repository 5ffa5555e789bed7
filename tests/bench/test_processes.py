"""Child processes of a benchmark are awaited with deadlines and always stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.processes import (
    Pinning,
    ProcessError,
    Service,
    detect_pinning,
    free_port,
    port_open,
    stop_all,
    wait_until,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stop_all_ends_every_process(tmp_path: Path) -> None:
    services = [Service(f"s{i}", SLEEPER, log_dir=tmp_path) for i in range(3)]
    stop_all(services)
    assert not any(service.alive() for service in services)


def test_early_exit_reports_the_last_line_of_the_log(tmp_path: Path) -> None:
    crash = [sys.executable, "-c", "raise SystemExit('port already in use')"]
    service = Service("crasher", crash, log_dir=tmp_path)
    with pytest.raises(ProcessError, match="port already in use"):
        wait_until(lambda: False, what="crasher", timeout=10, services=[service])


def test_waiting_past_the_deadline_is_an_error(tmp_path: Path) -> None:
    with Service("sleeper", SLEEPER, log_dir=tmp_path) as service:
        with pytest.raises(ProcessError, match="not ready"):
            wait_until(lambda: False, what="x", timeout=0.1, services=[service])


def test_free_port_has_no_listener() -> None:
    assert not port_open(free_port())


def test_pinning_needs_taskset() -> None:
    pinning = detect_pinning(None)
    assert not pinning.enabled
    assert pinning.prefix(1) == []


def test_enabled_pinning_prefixes_taskset() -> None:
    pinning = Pinning(True, 1, 0, "pinned")
    assert pinning.prefix(1) == ["taskset", "-c", "1"]
