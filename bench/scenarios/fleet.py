"""Measure one control plane holding many data plane nodes.

The nodes are light sync clients (`python -m bench.fleet`): the data plane's
own sync agent, each with its connection and certificate handshake, keeping
its config in memory rather than compiling it for a proxy; all in one
process, apart from the control plane's. One runtime group, set up through
the admin API as the propagation scenario does.

- 100 clients: for each admin write (a `PATCH` of the service), the time
  from its HTTP response until every client applied a newer version.
- 1,000 clients: a few changes, one at a time, each pushed to all of them;
  the time from the write's response until the last client applied it;
  the control plane's resident memory (and its peak); the latency of admin
  API reads made back to back meanwhile.

Both clocks are the machine's monotonic clock: the fleet reports when each
client applied, the scenario when the write was answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import ClientError, Connection
from bench.context import Context
from bench.outcome import ScenarioResult, Target, percentile
from bench.portico import ControlPlane, start_control_plane
from bench.scenarios.propagation import SetupError, Topology, standard_group

NAME = "fleet"
TITLE = "Control plane at scale: 100 and 1,000 light sync clients"
PROPAGATION_CLIENTS = 100
PROPAGATION_TARGET_MS = 250.0
HOLD_CLIENTS = 1_000
APPLIED_TARGET_S = 2.0
RSS_TARGET_MB = 500.0
ADMIN_P99_TARGET_MS = 100.0
ADMIN_PAUSE = 0.01
READY_TIMEOUT = 180.0
WAIT_TIMEOUT = 30.0

PROPAGATION = f"{PROPAGATION_CLIENTS} clients"
HOLD = f"{HOLD_CLIENTS:,} clients"

REQUIRED = ("control_plane.__main__", "data_plane.agent", "bench.fleet")


def run(context: Context) -> ScenarioResult:
    """Run both phases on one control plane; say what is missing if it cannot."""
    result = ScenarioResult(NAME, TITLE)
    absent = [module for module in REQUIRED if not context.has_module(module)]
    if absent:
        result.skip("not built yet: " + ", ".join(absent))
    else:
        scratch = context.scratch(NAME)
        control: ControlPlane | None = None
        try:
            control = start_control_plane(root=context.root, work_dir=scratch)
            asyncio.run(_measure(context, control, scratch, result))
        except SetupError as error:
            if error.missing:
                result.skip(str(error))
            else:
                result.fail(str(error))
        except (ClientError, TimeoutError, FleetError, OSError) as error:
            result.fail(str(error) or type(error).__name__)
        finally:
            if control is not None:
                control.service.stop()
    _add_missing_targets(result)
    return result


class FleetError(RuntimeError):
    """Raised when the fleet process ends or reports a timeout."""


def _targets() -> dict[str, tuple[str, str, float, str]]:
    return {
        "propagation": (
            f"admin write → all {PROPAGATION_CLIENTS} light sync clients, p99 < "
            f"{PROPAGATION_TARGET_MS:.0f} ms (issue 4)",
            "<",
            PROPAGATION_TARGET_MS,
            "ms",
        ),
        "applied": (
            f"one change applied by all {HOLD_CLIENTS:,} light sync clients "
            f"< {APPLIED_TARGET_S:.0f} s, worst change (issue 4)",
            "<",
            APPLIED_TARGET_S,
            "s",
        ),
        "rss": (
            f"control plane peak RSS with {HOLD_CLIENTS:,} clients < "
            f"{RSS_TARGET_MB:.0f} MB (issue 4)",
            "<",
            RSS_TARGET_MB,
            "MB",
        ),
        "admin": (
            f"admin API p99 while changes reach {HOLD_CLIENTS:,} clients < "
            f"{ADMIN_P99_TARGET_MS:.0f} ms (issue 4)",
            "<",
            ADMIN_P99_TARGET_MS,
            "ms",
        ),
    }


def _check(result: ScenarioResult, key: str, measured: float | None) -> None:
    description, comparison, threshold, unit = _targets()[key]
    assert comparison == "<", "every fleet target is an upper bound"
    result.targets.append(
        Target.check(description, measured, "<", threshold, unit, reason=result.reason)
    )


def _add_missing_targets(result: ScenarioResult) -> None:
    """Give each target not measured a skipped entry carrying the reason."""
    present = {target.description for target in result.targets}
    for description, _, threshold, unit in _targets().values():
        if description not in present:
            result.targets.append(
                Target.check(
                    description,
                    None,
                    "<",
                    threshold,
                    unit,
                    reason=result.reason or "not measured",
                )
            )


async def _measure(
    context: Context, control: ControlPlane, scratch: Path, result: ScenarioResult
) -> None:
    admin = Connection(control.admin_port, token=control.token)
    try:
        group = await standard_group(admin, control, scratch)
        await _propagation(context, group, admin, scratch, result)
        await _hold(context, control, group, admin, scratch, result)
    finally:
        await admin.close()
    result.notes.append(
        "processes not pinned: the control plane and the fleet (all clients in "
        "one process) share the machine's CPUs, so a figure includes the "
        "fleet's own work of decoding and checking every client's config"
    )


async def _propagation(
    context: Context,
    group: Topology,
    admin: Connection,
    scratch: Path,
    result: ScenarioResult,
) -> None:
    writes = 15 if context.quick else 100
    context.progress(NAME, f"starting {PROPAGATION_CLIENTS} light sync clients")
    fleet = await Fleet.start(PROPAGATION_CLIENTS, group, scratch)
    # The admin connection idled while the clients connected; start afresh.
    await admin.close()
    pooled: list[Change] = []
    series: dict[str, list[float]] = {}
    try:
        context.progress(NAME, f"{PROPAGATION} in sync after {fleet.ready_s:.1f} s")
        for run_index in range(1, context.runs + 1):
            changes = [
                await _change(admin, group, fleet, index) for index in range(writes)
            ]
            pooled += changes
            lags = [change.lag_ms for change in changes]
            for name, value in (
                ("propagation p50", percentile(lags, 0.5)),
                ("propagation p99", percentile(lags, 0.99)),
                ("propagation max", max(lags)),
                (
                    "from write sent, p99",
                    percentile([c.total_ms for c in changes], 0.99),
                ),
                (
                    "admin write round trip p50",
                    percentile([c.round_trip_ms for c in changes], 0.5),
                ),
            ):
                series.setdefault(name, []).append(value)
            context.progress(
                NAME,
                f"run {run_index}/{context.runs} {PROPAGATION}: {writes} writes, "
                f"p50 {percentile(lags, 0.5):.1f} ms, p99 "
                f"{percentile(lags, 0.99):.1f} ms, max {max(lags):.1f} ms",
            )
    finally:
        await fleet.stop()
    for name, values in series.items():
        result.add(PROPAGATION, name, "ms", values)
    pooled_p99 = percentile([change.lag_ms for change in pooled], 0.99)
    result.add(PROPAGATION, "propagation p99, all writes pooled", "ms", [pooled_p99])
    result.add(PROPAGATION, "connected and in sync after start", "s", [fleet.ready_s])
    result.notes.append(
        f"{PROPAGATION}: {context.runs} run(s) of {writes} writes; propagation is "
        "timed from the write's response, and is below zero when every client "
        "applied the change before the response reached the writer (the control "
        "plane pushes before it answers)"
    )
    _check(result, "propagation", pooled_p99)


async def _hold(
    context: Context,
    control: ControlPlane,
    group: Topology,
    admin: Connection,
    scratch: Path,
    result: ScenarioResult,
) -> None:
    count = 3 if context.quick else 5
    context.progress(NAME, f"starting {HOLD_CLIENTS:,} light sync clients")
    fleet = await Fleet.start(HOLD_CLIENTS, group, scratch)
    await admin.close()
    sampler = AdminSampler(control.admin_port, control.token, group.service_path)
    sampling = asyncio.create_task(sampler.run())
    changes: list[Change] = []
    try:
        context.progress(NAME, f"{HOLD} in sync after {fleet.ready_s:.1f} s")
        for index in range(count):
            await asyncio.sleep(0.5)  # admin reads with no change going on too
            change = await _change(admin, group, fleet, index)
            changes.append(change)
            context.progress(
                NAME,
                f"change {index + 1}/{count}: all {HOLD} applied "
                f"{change.total_ms:.0f} ms after the write was sent",
            )
        await asyncio.sleep(0.5)
        rss, peak = _memory_mb(control.service.pid)
    finally:
        sampler.stop()
        await sampling
        await fleet.stop()

    applied = [change.total_ms / 1000 for change in changes]
    result.add(HOLD, "write sent → all applied, per change", "s", applied)
    result.add(
        HOLD,
        "write answered → all applied, per change",
        "ms",
        [c.lag_ms for c in changes],
    )
    result.add(HOLD, "admin write round trip", "ms", [c.round_trip_ms for c in changes])
    result.add(HOLD, "connected and in sync after start", "s", [fleet.ready_s])
    if rss is not None and peak is not None:
        result.add(HOLD, "control plane RSS after the changes", "MB", [rss])
        result.add(HOLD, "control plane peak RSS (VmHWM)", "MB", [peak])
    # From each write sent until a second after its last client applied it:
    # the control plane records what the nodes answered in that time.
    windows = [(c.sent, c.last + 1.0) for c in changes]
    during = sampler.latencies_within(windows)
    for name, values in (
        ("during the changes", during),
        ("whole phase", [latency for _, latency in sampler.latencies]),
    ):
        if values:
            result.add(HOLD, f"admin API p50, {name}", "ms", [percentile(values, 0.5)])
            result.add(HOLD, f"admin API p99, {name}", "ms", [percentile(values, 0.99)])
            result.add(HOLD, f"admin API reads, {name}", "reads", [float(len(values))])
    if sampler.failures:
        result.notes.append(f"{HOLD}: {sampler.failures} admin reads failed")
    result.notes.append(
        f"{HOLD}: {count} changes, one at a time, 0.5 s apart; admin reads are "
        "GETs of the changed service, one after another with a 10 ms pause, "
        "over one kept-alive connection; 'during the changes' are those started "
        "from a write until a second after its last client applied it"
    )
    _check(result, "applied", max(applied))
    _check(result, "rss", peak)
    _check(result, "admin", percentile(during, 0.99) if during else None)


@dataclass(frozen=True)
class Change:
    """The times of one admin write, on the monotonic clock, in seconds."""

    sent: float
    answered: float
    last: float  # when the last client applied it

    @property
    def lag_ms(self) -> float:
        """From the write's response to the last client; < 0 if it came first."""
        return (self.last - self.answered) * 1000

    @property
    def total_ms(self) -> float:
        return (self.last - self.sent) * 1000

    @property
    def round_trip_ms(self) -> float:
        return (self.answered - self.sent) * 1000


async def _change(
    admin: Connection, group: Topology, fleet: Fleet, index: int
) -> Change:
    """Make one write and wait until every client applied it."""
    before = fleet.version
    sent = time.monotonic()
    response = await admin.request(
        "PATCH", group.service_path, {"tags": [f"fleet-{index}-{time.time_ns()}"]}
    )
    answered = time.monotonic()
    if response.status != 200:
        raise SetupError(f"PATCH service answered {response.status}", missing=False)
    return Change(sent, answered, await fleet.wait_newer(before))


class Fleet:
    """The `python -m bench.fleet` process and the version its clients agree on."""

    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any]):
        self._process = process
        self.version = int(ready["version"])
        self.ready_s = float(ready["seconds"])

    @classmethod
    async def start(cls, count: int, group: Topology, scratch: Path) -> Fleet:
        log = (scratch / f"fleet-{count}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fleet",
            "--clients",
            str(count),
            "--ready-timeout",
            str(READY_TIMEOUT),
            *group.cluster_options,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=Path(__file__).resolve().parents[2],
            limit=1024 * 1024,
        )
        log.close()
        try:
            ready = await _event(process, READY_TIMEOUT + 10)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        if ready.get("event") != "ready":
            process.kill()
            await process.wait()
            raise FleetError(f"{count} clients did not get in sync: {ready}")
        return cls(process, ready)

    async def wait_newer(self, version: int) -> float:
        """Return when the last client applied a version newer than `version`."""
        assert self._process.stdin is not None, "started with a pipe"
        self._process.stdin.write(json.dumps({"wait": version}).encode() + b"\n")
        await self._process.stdin.drain()
        event = await _event(self._process, WAIT_TIMEOUT + 10)
        if event.get("event") != "reached":
            raise FleetError(f"clients did not all apply a new version: {event}")
        self.version = int(event["version"])
        return float(event["last"])

    async def stop(self) -> None:
        """End the fleet: close its stdin, then kill it if it lingers."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


async def _event(process: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert process.stdout is not None, "started with a pipe"
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
    except TimeoutError:
        raise FleetError(f"the fleet said nothing for {timeout:.0f} s") from None
    if not line:
        code = await process.wait()
        raise FleetError(f"the fleet exited with code {code}")
    event: dict[str, Any] = json.loads(line)
    return event


class AdminSampler:
    """Time admin API reads, one after another, until stopped."""

    def __init__(self, port: int, token: str, path: str) -> None:
        self._connection = Connection(port, token=token)
        self._path = path
        self._stopped = asyncio.Event()
        self.latencies: list[tuple[float, float]] = []  # (start, ms)
        self.failures = 0

    async def run(self) -> None:
        try:
            while not self._stopped.is_set():
                started = time.monotonic()
                try:
                    response = await self._connection.request("GET", self._path)
                except (ClientError, OSError, TimeoutError):
                    self.failures += 1
                else:
                    if response.status == 200:
                        took = (time.monotonic() - started) * 1000
                        self.latencies.append((started, took))
                    else:
                        self.failures += 1
                await asyncio.sleep(ADMIN_PAUSE)
        finally:
            await self._connection.close()

    def stop(self) -> None:
        self._stopped.set()

    def latencies_within(self, windows: list[tuple[float, float]]) -> list[float]:
        """Return the latencies of reads that started inside any window."""
        return [
            took
            for started, took in self.latencies
            if any(begin <= started <= end for begin, end in windows)
        ]


def _memory_mb(pid: int) -> tuple[float | None, float | None]:
    """Return the resident memory of `pid` now and at its peak, in MB."""
    found: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(line.split()[1]) / 1024
    except OSError:
        return None, None
    return found.get("VmRSS"), found.get("VmHWM")
