"""Measure how long an admin write takes to reach every data plane node.

A control plane and N data plane nodes attached to one runtime group, set up
through the admin API as a user would (group, generated client certificate,
a service and a route). Then, one at a time, an admin write; the clock starts
when its HTTP response arrives and stops when the last node's `/status`
reports a newer config version. Each node's status endpoint is polled over a
kept-alive connection about every half millisecond, which bounds the
resolution and adds a little load of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any

from bench.client import ClientError, Connection
from bench.context import Context
from bench.outcome import ScenarioResult, Target, percentile
from bench.portico import (
    ControlPlane,
    DataPlane,
    await_data_plane,
    start_control_plane,
    start_data_plane,
)
from bench.processes import ProcessError

NAME = "propagation"
TITLE = "Config propagation: admin write to every data plane node"
NODE_COUNTS = (1, 10)
TARGET_NODES = 10
TARGET_P99_MS = 50.0
POLL_INTERVAL = 0.0005
WRITE_DEADLINE = 10.0
SETTLE_DEADLINE = 30.0

REQUIRED = (
    "control_plane.__main__",
    "control_plane.cluster.listener",
    "data_plane.__main__",
    "data_plane.agent",
)


class SetupError(RuntimeError):
    """Raised when an admin API step the scenario needs is missing or refused."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def run(context: Context) -> ScenarioResult:
    """Run the scenario if the cluster pieces exist; otherwise say what is missing."""
    result = ScenarioResult(NAME, TITLE)
    absent = [module for module in REQUIRED if not context.has_module(module)]
    if absent:
        result.skip("not built yet: " + ", ".join(absent))
        result.targets = [_target(None, reason=result.reason)]
        return result

    scratch = context.scratch(NAME)
    nodes: list[DataPlane] = []
    control: ControlPlane | None = None
    try:
        control = start_control_plane(root=context.root, work_dir=scratch)
        asyncio.run(_measure(context, control, scratch, nodes, result))
    except SetupError as error:
        if error.missing:
            result.skip(str(error))
        else:
            result.fail(str(error))
    except (ProcessError, ClientError, TimeoutError) as error:
        result.fail(str(error) or type(error).__name__)
    finally:
        for node in nodes:
            node.service.stop()
        if control is not None:
            control.service.stop()

    if not any(t.description == _target(None).description for t in result.targets):
        result.targets.append(_target(None, reason=result.reason))
    return result


def _target(measured: float | None, *, reason: str = "") -> Target:
    return Target.check(
        f"p99 admin write → all {TARGET_NODES} data plane nodes < "
        f"{TARGET_P99_MS:.0f} ms (issue 3)",
        measured,
        "<",
        TARGET_P99_MS,
        "ms",
        reason=reason,
    )


async def _measure(
    context: Context,
    control: ControlPlane,
    scratch: Path,
    nodes: list[DataPlane],
    result: ScenarioResult,
) -> None:
    admin = Connection(control.admin_port, token=control.token)
    group_id, endpoint, service_path = await _set_up_group(admin)
    cert, key = await _client_certificate(admin, group_id, scratch)
    writes = 30 if context.quick else 200

    for count in NODE_COUNTS:
        context.progress(NAME, f"starting {count - len(nodes)} data plane node(s)")
        _start_nodes(context, scratch, nodes, count, endpoint, cert, key)
        polls = [Connection(node.status_port) for node in nodes]
        try:
            await _settle(polls)
            lags, round_trips = await _write_loop(
                context, admin, polls, service_path, writes, label=f"{count} node(s)"
            )
        finally:
            for poll in polls:
                await poll.close()

        contender = f"{count} node(s)"
        for name, fraction in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            result.add(
                contender, f"propagation {name}", "ms", [percentile(lags, fraction)]
            )
        result.add(contender, "admin write p50", "ms", [percentile(round_trips, 0.5)])
        result.notes.append(
            f"{contender}: {len(lags)} writes; p99 is nearest-rank over them"
        )
        if count == TARGET_NODES:
            result.targets.append(_target(percentile(lags, 0.99)))
        await _record_reported_lag(admin, group_id, contender, result)

    await admin.close()


async def _record_reported_lag(
    admin: Connection, group_id: str, contender: str, result: ScenarioResult
) -> None:
    """Add the lag the control plane measured itself, where its nodes API has it."""
    response = await admin.request(
        "GET", f"/v2/runtime-groups/{group_id}/nodes?page%5Bsize%5D=100"
    )
    if response.status != 200:
        result.notes.append(f"nodes API answered {response.status}")
        return
    nodes = response.json().get("data") or []
    lags = [
        float(node["lag_ms"])
        for node in nodes
        if isinstance(node.get("lag_ms"), int | float) and node.get("connected", True)
    ]
    if not lags:
        result.notes.append(f"{contender}: the nodes API reports no lag_ms")
        return
    result.add(contender, "lag of the last write, CP-measured max", "ms", [max(lags)])


async def _set_up_group(admin: Connection) -> tuple[str, str, str]:
    group = await _call(
        admin,
        "POST",
        "/v2/runtime-groups",
        {"name": f"bench-propagation-{secrets.token_hex(4)}"},
    )
    group_id = str(group["id"])
    endpoint = str(group["config"]["control_plane_endpoint"])
    base = f"/v2/runtime-groups/{group_id}/core-entities"

    service = await _call(
        admin,
        "POST",
        f"{base}/services",
        {"name": "bench-service", "url": "http://127.0.0.1:9/"},
    )
    await _call(
        admin,
        "POST",
        f"{base}/routes",
        {
            "name": "bench-route",
            "paths": ["/bench"],
            "service": {"id": service["id"]},
        },
    )
    return group_id, endpoint, f"{base}/services/{service['id']}"


async def _client_certificate(
    admin: Connection, group_id: str, scratch: Path
) -> tuple[Path, Path]:
    generated = await _call(
        admin,
        "POST",
        f"/v2/runtime-groups/{group_id}/dp-client-certificates/generate",
        {},
    )
    cert = scratch / "cluster.crt"
    key = scratch / "cluster.key"
    cert.write_text(generated["item"]["cert"])
    # The key is a secret: readable by the owner only, from its first byte.
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generated["private_key"])
    return cert, key


async def _call(admin: Connection, method: str, path: str, body: Any) -> Any:
    response = await admin.request(method, path, body)
    if response.status in (404, 405, 501):
        raise SetupError(
            f"{method} {path.split('/core-entities')[0]}… is not available "
            f"({response.status})",
            missing=True,
        )
    if response.status >= 300:
        detail = response.body[:300].decode(errors="replace")
        raise SetupError(
            f"{method} {path} answered {response.status}: {detail}", missing=False
        )
    return response.json() if response.body else None


def _start_nodes(
    context: Context,
    scratch: Path,
    nodes: list[DataPlane],
    count: int,
    endpoint: str,
    cert: Path,
    key: Path,
) -> None:
    cluster = [
        "--cluster-control-plane",
        endpoint,
        "--cluster-cert",
        str(cert),
        "--cluster-cert-key",
        str(key),
    ]
    # Start them all first, then wait: Python start-up dominates and overlaps.
    fresh = [
        start_data_plane(
            f"dp-{index}",
            cluster,
            root=context.root,
            work_dir=scratch,
            wait=False,
        )
        for index in range(len(nodes), count)
    ]
    nodes.extend(fresh)
    for node in fresh:
        await_data_plane(node, timeout=SETTLE_DEADLINE)


async def _version(poll: Connection) -> int | None:
    response = await poll.request("GET", "/status", timeout=WRITE_DEADLINE)
    if response.status != 200:
        return None
    config = response.json().get("config") or {}
    version = config.get("version")
    return version if isinstance(version, int) else None


async def _settle(polls: list[Connection]) -> int:
    """Wait until every node runs the same config version; return it."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        versions = await asyncio.gather(*(_version(p) for p in polls))
        if None not in versions and len(set(versions)) == 1:
            settled = versions[0]
            assert settled is not None, "None was excluded above"
            return settled
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes never agreed on a config version: {versions}")
        await asyncio.sleep(0.01)


async def _write_loop(
    context: Context,
    admin: Connection,
    polls: list[Connection],
    service_path: str,
    writes: int,
    *,
    label: str,
) -> tuple[list[float], list[float]]:
    lags: list[float] = []
    round_trips: list[float] = []
    for index in range(writes):
        before = await _settle(polls)
        sent = time.perf_counter()
        response = await admin.request(
            "PATCH", service_path, {"tags": [f"bench-{index}"]}
        )
        answered = time.perf_counter()
        if response.status != 200:
            raise SetupError(f"PATCH service answered {response.status}", missing=False)
        reached = await asyncio.gather(
            *(_await_newer(poll, before, answered) for poll in polls)
        )
        lags.append((max(reached) - answered) * 1000)
        round_trips.append((answered - sent) * 1000)

    context.progress(
        NAME,
        f"{label}: {writes} writes, propagation p50 "
        f"{percentile(lags, 0.5):.1f} ms, p99 {percentile(lags, 0.99):.1f} ms, "
        f"max {max(lags):.1f} ms",
    )
    return lags, round_trips


async def _await_newer(poll: Connection, before: int, since: float) -> float:
    """Return when `poll`'s node first reported a version newer than `before`."""
    while True:
        version = await _version(poll)
        seen = time.perf_counter()
        if version is not None and version > before:
            return seen
        if seen - since > WRITE_DEADLINE:
            raise TimeoutError(
                f"a node stayed on version {before} for {WRITE_DEADLINE:.0f} s "
                "after a write"
            )
        await asyncio.sleep(POLL_INTERVAL)
