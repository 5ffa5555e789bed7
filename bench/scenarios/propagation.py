"""Measure how long an admin write takes to reach every data plane node.

A control plane and N data plane nodes attached to one runtime group, set up
through the admin API as a user would (group, generated client certificate,
a service and a route); then the same with the nodes on a composite group and
the writes going to its member, so that the composite's rebuild is on the
path. One admin write at a time: the clock starts when its HTTP response
arrives and stops when the last node's `/status` reports a newer config
version. Each node's status endpoint is polled over a kept-alive connection
about every half millisecond, which bounds the resolution and adds a little
load of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
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
from bench.processes import ProcessError, stop_all

NAME = "propagation"
TITLE = "Config propagation: admin write to every data plane node"
NODE_COUNTS = (1, 10)
TARGET_NODES = 10
STANDARD = "standard group"
COMPOSITE = "composite group"
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
        _add_missing_targets(result)
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
        stop_all([node.service for node in nodes])
        if control is not None:
            control.service.stop()

    _add_missing_targets(result)
    return result


def _target(measured: float | None, label: str, *, reason: str = "") -> Target:
    return Target.check(
        f"admin write → all {TARGET_NODES} data plane nodes of a {label}, p99 < "
        f"{TARGET_P99_MS:.0f} ms (issue 3)",
        measured,
        "<",
        TARGET_P99_MS,
        "ms",
        reason=reason,
    )


def _add_missing_targets(result: ScenarioResult) -> None:
    """Give each topology not measured a skipped target carrying the reason."""
    for label in (STANDARD, COMPOSITE):
        wanted = _target(None, label, reason=result.reason or "not measured")
        if all(t.description != wanted.description for t in result.targets):
            result.targets.append(wanted)


async def _measure(
    context: Context,
    control: ControlPlane,
    scratch: Path,
    nodes: list[DataPlane],
    result: ScenarioResult,
) -> None:
    admin = Connection(control.admin_port, token=control.token)
    writes = 15 if context.quick else 100
    standard = await standard_group(admin, control, scratch)
    for count in NODE_COUNTS:
        await _measure_topology(
            context, admin, scratch, nodes, standard, count, writes, result
        )

    # The same again behind a composite, with fresh nodes on it.
    stop_all([node.service for node in nodes])
    nodes.clear()
    composite = await _composite(admin, control, scratch)
    await _measure_topology(
        context, admin, scratch, nodes, composite, TARGET_NODES, writes, result
    )
    await admin.close()

    result.notes.append(
        "processes not pinned: the control plane, the nodes and the poller "
        "share every CPU"
    )
    result.notes.append(
        f"{context.runs} run(s) of {writes} writes per node count; percentiles "
        "are nearest-rank; the clock starts at the write's response unless the "
        "metric says it starts when the write is sent"
    )


async def _measure_topology(
    context: Context,
    admin: Connection,
    scratch: Path,
    nodes: list[DataPlane],
    topology: Topology,
    count: int,
    writes: int,
    result: ScenarioResult,
) -> None:
    """Bring the topology's nodes to `count`, measure, record the figures."""
    context.progress(NAME, f"starting {count - len(nodes)} data plane node(s)")
    _start_nodes(context, scratch, nodes, count, topology.cluster_options)
    contender = f"{count} node(s), {topology.label}"
    pooled = await _measure_nodes(
        context, admin, nodes, topology.service_path, writes, contender, result
    )
    if count == TARGET_NODES:
        result.targets.append(_target(percentile(pooled, 0.99), topology.label))
    await _record_reported_lag(admin, topology.nodes_path, contender, result)


async def _measure_nodes(
    context: Context,
    admin: Connection,
    nodes: list[DataPlane],
    service_path: str,
    writes: int,
    contender: str,
    result: ScenarioResult,
) -> list[float]:
    """Record the runs' figures for the nodes running now; return all lags."""
    polls = [Connection(node.status_port) for node in nodes]
    series: dict[str, list[float]] = {}
    pooled: list[float] = []
    try:
        for run_index in range(1, context.runs + 1):
            sample = await _write_loop(admin, polls, service_path, writes)
            pooled += sample.lags
            for name, value in sample.summary().items():
                series.setdefault(name, []).append(value)
            context.progress(
                NAME,
                f"run {run_index}/{context.runs} {contender}: {writes} writes, "
                + sample.describe(),
            )
    finally:
        for poll in polls:
            await poll.close()

    for name, values in series.items():
        result.add(contender, name, "ms", values)
    pooled_p99 = percentile(pooled, 0.99)
    result.add(contender, "propagation p99, all writes pooled", "ms", [pooled_p99])
    return pooled


async def _record_reported_lag(
    admin: Connection, nodes_path: str, contender: str, result: ScenarioResult
) -> None:
    """Add the lag the control plane measured itself, where its nodes API has it."""
    response = await admin.request("GET", f"{nodes_path}?page%5Bsize%5D=100")
    if response.status != 200:
        result.notes.append(f"nodes API answered {response.status}")
        return
    body = response.json()
    nodes = body.get("items") or body.get("data") or []
    lags = [
        float(node["lag_ms"])
        for node in nodes
        if isinstance(node.get("lag_ms"), int | float) and node.get("connected", True)
    ]
    if not lags:
        result.notes.append(f"{contender}: the nodes API reports no lag_ms")
        return
    result.add(contender, "lag of the last write, CP-measured max", "ms", [max(lags)])


@dataclass(frozen=True)
class Topology:
    """Where the nodes connect and where the admin writes go."""

    label: str
    cluster_options: list[str]
    service_path: str  # the service the writes change
    nodes_path: str  # the nodes API of the group the nodes connect to


async def _create_group(admin: Connection, *, composite: bool = False) -> Any:
    body: dict[str, Any] = {"name": f"bench-propagation-{secrets.token_hex(4)}"}
    if composite:
        body["cluster_type"] = "CLUSTER_TYPE_COMPOSITE"
    return await _call(admin, "POST", "/v2/runtime-groups", body)


async def _add_service(admin: Connection, group_id: str) -> str:
    """Create a service and a route in the group; return the service's path."""
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
        {"name": "bench-route", "paths": ["/bench"], "service": {"id": service["id"]}},
    )
    return f"{base}/services/{service['id']}"


async def standard_group(
    admin: Connection, control: ControlPlane, scratch: Path
) -> Topology:
    """Nodes on a standard group; writes to that group."""
    group = await _create_group(admin)
    service_path = await _add_service(admin, group["id"])
    options = await _cluster_options(admin, group, control, scratch)
    nodes_path = f"/v2/runtime-groups/{group['id']}/nodes"
    return Topology(STANDARD, options, service_path, nodes_path)


async def _composite(
    admin: Connection, control: ControlPlane, scratch: Path
) -> Topology:
    """Nodes on a composite group; writes to its member, so a merge is on the path."""
    member = await _create_group(admin)
    service_path = await _add_service(admin, member["id"])
    composite = await _create_group(admin, composite=True)
    await _call(
        admin,
        "POST",
        f"/v2/runtime-groups/{composite['id']}/composite-memberships/add",
        {"members": [{"id": member["id"]}]},
    )
    options = await _cluster_options(admin, composite, control, scratch)
    nodes_path = f"/v2/runtime-groups/{composite['id']}/nodes"
    return Topology(COMPOSITE, options, service_path, nodes_path)


async def _cluster_options(
    admin: Connection, group: Any, control: ControlPlane, scratch: Path
) -> list[str]:
    """Generate and pin a client certificate; return the nodes' cluster options."""
    group_id = group["id"]
    generated = await _call(
        admin,
        "POST",
        f"/v2/runtime-groups/{group_id}/dp-client-certificates/generate",
        {},
    )
    cert = scratch / f"{group_id}.crt"
    key = scratch / f"{group_id}.key"
    cert.write_text(generated["item"]["cert"])
    # The key is a secret: readable by the owner only, from its first byte.
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generated["private_key"])

    options = [
        "--cluster-control-plane",
        group["config"]["control_plane_endpoint"],
        "--cluster-cert",
        str(cert),
        "--cluster-cert-key",
        str(key),
    ]
    # Verify the control plane as a user would, with the certificate it made.
    ca = control.prefix / "cluster.crt"
    if ca.is_file():
        options += ["--cluster-ca-cert", str(ca)]
    return options


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
    cluster: list[str],
) -> None:
    """Start nodes until there are `count`, with the cluster options given."""
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


@dataclass(frozen=True)
class WriteSample:
    """Times of one run of writes, in milliseconds, one entry per write."""

    lags: list[float]  # response received → every node on the new version
    totals: list[float]  # request sent → every node on the new version
    round_trips: list[float]  # request sent → response received

    def summary(self) -> dict[str, float]:
        return {
            "propagation p50": percentile(self.lags, 0.5),
            "propagation p99": percentile(self.lags, 0.99),
            "propagation max": max(self.lags),
            "from write sent, p99": percentile(self.totals, 0.99),
            "admin write round trip p50": percentile(self.round_trips, 0.5),
        }

    def describe(self) -> str:
        return (
            f"propagation p50 {percentile(self.lags, 0.5):.1f} ms, "
            f"p99 {percentile(self.lags, 0.99):.1f} ms, max {max(self.lags):.1f} ms"
        )


async def _write_loop(
    admin: Connection, polls: list[Connection], service_path: str, writes: int
) -> WriteSample:
    sample = WriteSample([], [], [])
    for index in range(writes):
        before = await _settle(polls)
        sent = time.perf_counter()
        response = await admin.request(
            "PATCH", service_path, {"tags": [f"bench-{index}-{secrets.token_hex(3)}"]}
        )
        answered = time.perf_counter()
        if response.status != 200:
            raise SetupError(f"PATCH service answered {response.status}", missing=False)
        reached = await asyncio.gather(
            *(_await_newer(poll, before, answered) for poll in polls)
        )
        last = max(reached)
        sample.lags.append((last - answered) * 1000)
        sample.totals.append((last - sent) * 1000)
        sample.round_trips.append((answered - sent) * 1000)
    return sample


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
