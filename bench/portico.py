"""Start Portico's own processes (control plane, data plane nodes) for a scenario.

Both are started as `python -m <package>` from the checkout, with the Python
that runs the benchmark, and are ready when their HTTP health endpoint says so.
"""

from __future__ import annotations

import secrets
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Pinning, Service, free_port, http_ok, wait_until


@dataclass
class DataPlane:
    """A running data plane node and where to reach it."""

    service: Service
    proxy_port: int
    status_port: int

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"


@dataclass
class ControlPlane:
    """A running control plane, its admin URL and the admin token it accepts."""

    service: Service
    admin_port: int
    cluster_port: int
    telemetry_port: int
    token: str
    prefix: Path

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def start_data_plane(
    name: str,
    args: Sequence[str],
    *,
    root: Path,
    work_dir: Path,
    pinning: Pinning | None = None,
    cpu: int | None = None,
    wait: bool = True,
    timeout: float = 30.0,
) -> DataPlane:
    """Start `python -m data_plane` with `args` on free proxy and status ports."""
    proxy_port, status_port = free_port(), free_port()
    prefix = work_dir / name
    prefix.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "data_plane",
        "--proxy-listen",
        f"127.0.0.1:{proxy_port}",
        "--status-listen",
        f"127.0.0.1:{status_port}",
        "--prefix",
        str(prefix),
        "--log-level",
        "warning",
        *args,
    ]
    service = Service(name, argv, log_dir=work_dir, cpu=cpu, pinning=pinning, cwd=root)
    node = DataPlane(service, proxy_port, status_port)
    if wait:
        await_data_plane(node, timeout=timeout)
    return node


def await_data_plane(node: DataPlane, *, timeout: float = 30.0) -> None:
    """Wait until the node has loaded a config (`/status/ready` answers 200)."""
    try:
        wait_until(
            lambda: http_ok(f"{node.status_url}/status/ready"),
            what=node.service.name,
            timeout=timeout,
            services=[node.service],
        )
    except BaseException:
        node.service.stop()
        raise


def start_control_plane(
    *, root: Path, work_dir: Path, timeout: float = 30.0
) -> ControlPlane:
    """Start `python -m control_plane` on free ports with a known admin token."""
    admin, cluster, telemetry = free_port(), free_port(), free_port()
    # Shaped like the personal tokens the control plane issues itself.
    alphabet = string.ascii_letters + string.digits
    token = "kpat_" + "".join(secrets.choice(alphabet) for _ in range(46))
    prefix = work_dir / "cp"
    prefix.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "control_plane",
        "--prefix",
        str(prefix),
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--cluster-listen",
        f"127.0.0.1:{cluster}",
        "--cluster-telemetry-listen",
        f"127.0.0.1:{telemetry}",
        "--log-level",
        "warning",
    ]
    service = Service(
        "control-plane",
        argv,
        log_dir=work_dir,
        env={"PORTICO_ADMIN_TOKEN": token},
        cwd=root,
    )
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{admin}/health"),
            what="control plane",
            timeout=timeout,
            services=[service],
        )
    except BaseException:
        service.stop()
        raise
    return ControlPlane(service, admin, cluster, telemetry, token, prefix)
