"""Find the external programs the benchmarks drive, installing them if needed.

nginx (the upstream and the reference proxy) and wrk (the load generator) come
from Debian packages; nothing else is fetched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

# Debian installs nginx outside the PATH of non-root users.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class ToolError(RuntimeError):
    """Raised when a program the benchmarks need is missing and cannot be installed."""


@dataclass(frozen=True)
class Tools:
    """Paths and versions of the programs the benchmarks run."""

    nginx: str
    wrk: str
    taskset: str | None
    nginx_version: str
    wrk_version: str


def find_program(name: str) -> str | None:
    """Return the path of `name` on the PATH or in the sbin directories."""
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in _SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_tools(*, install: bool = True) -> Tools:
    """Return nginx and wrk, installing the missing ones from Debian packages."""
    missing = [name for name in ("nginx", "wrk") if find_program(name) is None]
    if missing and install:
        _apt_install(missing)

    nginx = find_program("nginx")
    wrk = find_program("wrk")
    if nginx is None or wrk is None:
        absent = ", ".join(n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None)
        raise ToolError(
            f"{absent} not found; install with: apt-get install -y nginx-light wrk"
        )
    return Tools(
        nginx=nginx,
        wrk=wrk,
        taskset=find_program("taskset"),
        nginx_version=_version([nginx, "-v"], r"nginx/(\S+)"),
        wrk_version=_version([wrk, "--version"], r"wrk (?:debian/)?(\S+)"),
    )


def _apt_install(missing: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise ToolError(
            f"{', '.join(missing)} missing and apt-get is not available; "
            "install nginx and wrk with the system's package manager"
        )
    if os.geteuid() != 0:
        raise ToolError(
            f"{', '.join(missing)} missing; run as root or install them first: "
            "sudo apt-get install -y nginx-light wrk"
        )

    packages = ["wrk"] if "wrk" in missing else []
    if "nginx" in missing:
        packages.append(_nginx_package())
    print(f"installing {' '.join(packages)} from Debian packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The package lists may be absent on a fresh machine; refresh them once
    # only if the first attempt cannot find the packages.
    first = _run_apt(["install", "-y", "--no-install-recommends", *packages], env)
    if first.returncode != 0:
        _run_apt(["update"], env)
        second = _run_apt(["install", "-y", "--no-install-recommends", *packages], env)
        if second.returncode != 0:
            tail = second.stderr.strip().splitlines()[-1:] or ["unknown error"]
            raise ToolError(f"apt-get install {' '.join(packages)} failed: {tail[0]}")


def _nginx_package() -> str:
    probe = subprocess.run(
        ["apt-cache", "show", "nginx-light"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "nginx-light" if probe.returncode == 0 and probe.stdout else "nginx"


def _run_apt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def _version(command: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=10
        )
    except OSError:
        return "unknown"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"
