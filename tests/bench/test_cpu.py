"""CPU time is read for a process together with its children."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.cpu import tree_cpu_seconds
from bench.processes import Service, wait_until

# The parent only waits; all the CPU is burnt by its child.
PARENT = (
    "import subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', "
    "'import time\\nend = time.process_time() + 0.3\\n"
    "while time.process_time() < end: pass\\ntime.sleep(60)'])\n"
)


def test_cpu_of_a_child_counts_for_its_parent(tmp_path: Path) -> None:
    with Service("parent", [sys.executable, "-c", PARENT], log_dir=tmp_path) as parent:
        wait_until(
            lambda: tree_cpu_seconds(parent.pid) >= 0.3,
            what="the child's CPU time",
            timeout=20,
            services=[parent],
        )


def test_this_process_has_used_some_cpu() -> None:
    assert tree_cpu_seconds(os.getpid()) > 0


def test_unknown_process_has_used_none() -> None:
    assert tree_cpu_seconds(2**22 + 1) == 0.0
