"""The probe times requests one by one against a real nginx upstream."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.context import ROOT
from bench.nginx import start_nginx, upstream_config
from bench.probe import probe
from bench.processes import Pinning, free_port
from bench.tools import find_program
from tests.conftest import deadline

UNPINNED = Pinning(False, 1, 0, "tests run unpinned")

needs_nginx = pytest.mark.skipif(
    find_program("nginx") is None, reason="nginx is installed by python -m bench"
)


@needs_nginx
def test_samples_carry_start_duration_and_status(tmp_path: Path) -> None:
    nginx = find_program("nginx")
    assert nginx is not None, "checked by needs_nginx"
    port = free_port()
    config = upstream_config(tmp_path / "upstream", port)
    with start_nginx(
        nginx, "upstream", config, port, work_dir=tmp_path, pinning=UNPINNED, cpu=0
    ):
        samples = probe(f"http://127.0.0.1:{port}/", 0.2, {}, deadline(5))
    assert samples
    starts = [start for start, _, _ in samples]
    assert starts == sorted(starts)
    assert {status for _, _, status in samples} == {200}
    assert all(seconds > 0 for _, seconds, _ in samples)


def test_a_refused_connection_is_a_sample_with_status_zero() -> None:
    samples = probe(f"http://127.0.0.1:{free_port()}/", 0.05, {}, deadline(5))
    assert samples and {status for _, _, status in samples} == {0}


def test_sigterm_ends_the_probe_with_its_samples() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.probe",
            f"http://127.0.0.1:{free_port()}/",
            "--seconds",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert process.stderr.readline().strip() == "probe: started"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=deadline(10))
    assert process.returncode == 0
    assert "samples" in json.loads(output)
