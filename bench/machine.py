"""Describe the machine and the checkout a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.tools import Tools
from data_plane import native


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(root: Path) -> str:
    """Return the checkout's commit, marked dirty when files differ from it."""
    head = _git(root, "rev-parse", "--short=12", "HEAD")
    if head is None:
        return "none (no commit yet)"
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{head} (with uncommitted changes)" if status else head


def describe(root: Path, tools: Tools | None) -> dict[str, Any]:
    """Return the facts a reader needs to compare this report with another."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": tools.nginx_version if tools else "not installed",
        "wrk": tools.wrk_version if tools else "not installed",
        "git_commit": git_commit(root),
        "data_plane_request_path": request_path(),
    }


def request_path() -> str:
    """Return whether data plane nodes started now run the compiled modules."""
    if native.mode() == "off":
        return f"Python source ({native.ENV}=off)"
    why = native.check()
    return "compiled with mypyc" if why is None else f"Python source ({why})"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None
