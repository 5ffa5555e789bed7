"""Compare a data plane node with two proxy workers with a one-process node.

Both nodes serve the proxy scenario's config (route `/mock` behind
basic-auth) in declarative mode, behind the same nginx upstream. The
one-process node is pinned to the contender CPU, as in the proxy scenario;
the two-worker node (`--workers 2`) is not pinned, for its workers to use
both CPUs, while wrk and the upstream stay on the load CPU. Runs are
interleaved and compared per run: req/s at 50 connections, CPU time per
request (the node's whole process tree), CPUs used.

Then the two-worker node reloads its file (SIGHUP) under a background load,
several times; after each reload every worker reports, in the node's
`/status`, the wall-clock time it swapped to the new config. The spread of
those times is how far apart the workers began to serve the version.
"""

from __future__ import annotations

import json
import signal
import statistics
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.cpu import tree_cpu_seconds
from bench.nginx import UPSTREAM_BODY, start_upstream
from bench.outcome import ScenarioResult, Target, percentile
from bench.portico import DataPlane, start_data_plane
from bench.processes import ProcessError, Service, stop_all
from bench.scenarios.proxy import authorization, declarative_config
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import BackgroundLoad, LoadError, run_load

NAME = "workers"
TITLE = "Two proxy workers on one port vs one process"
CONNECTIONS = 50
RELOAD_CONNECTIONS = 10
WORKERS = 2
SPREAD_TARGET_MS = 50.0
STATUS_POLL = 0.002
RELOAD_DEADLINE = 10.0

ONE = "portico 1 process"
TWO = f"portico {WORKERS} workers"


@dataclass(frozen=True)
class _Contender:
    name: str
    node: DataPlane
    config: Path


def run(context: Context) -> ScenarioResult:
    """Measure both nodes; skip what cannot run, say why."""
    result = ScenarioResult(NAME, TITLE)
    try:
        tools = ensure_tools(install=context.install_tools)
    except ToolError as error:
        result.skip(str(error))
    if result.status == "ok" and not context.has_module("data_plane.workers"):
        result.skip("the data plane has no worker pool yet (data_plane.workers)")
    if result.status != "ok":
        result.targets = [_target(None, result.reason)]
        return result

    services: list[Service] = []
    spreads: list[float] = []
    try:
        spreads = _measure(context, tools, context.scratch(NAME), services, result)
    except (ProcessError, LoadError) as error:
        result.fail(str(error))
    finally:
        stop_all(services)
    result.targets = [_target(max(spreads) if spreads else None, result.reason)]
    return result


def _target(measured: float | None, reason: str) -> Target:
    return Target.check(
        f"{TWO}: every worker serves a new config within {SPREAD_TARGET_MS:.0f} ms "
        "of the others, worst reload (issue 4)",
        measured,
        "<",
        SPREAD_TARGET_MS,
        "ms",
        reason=reason,
    )


def _measure(
    context: Context,
    tools: Tools,
    scratch: Path,
    services: list[Service],
    result: ScenarioResult,
) -> list[float]:
    pinning = context.pinning
    upstream, upstream_port = start_upstream(tools.nginx, scratch, pinning)
    services.append(upstream)

    contenders = []
    for name, workers, cpu in ((ONE, 1, pinning.contender_cpu), (TWO, WORKERS, None)):
        config = scratch / f"{name.replace(' ', '-')}.json"
        config.write_text(json.dumps(declarative_config(upstream_port)))
        node = start_data_plane(
            name.replace(" ", "-"),
            ["--declarative-config", str(config), "--workers", str(workers)],
            root=context.root,
            work_dir=scratch,
            pinning=pinning,
            cpu=cpu,
        )
        services.append(node.service)
        contenders.append(_Contender(name, node, config))

    headers = {"Authorization": authorization()}
    for contender in contenders:
        _check_answers(contender, headers)
        run_load(
            tools.wrk,
            contender.node.proxy_url + "/mock",
            connections=CONNECTIONS,
            seconds=1,
            pinning=pinning,
            headers=headers,
        )

    _throughput(context, tools, contenders, headers, result)
    return _reloads(context, tools, contenders[1], headers, result)


def _throughput(
    context: Context,
    tools: Tools,
    contenders: list[_Contender],
    headers: dict[str, str],
    result: ScenarioResult,
) -> None:
    per_second: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpus_used: dict[str, list[float]] = {c.name: [] for c in contenders}
    for run_index in range(1, context.runs + 1):
        for contender in contenders:
            pid = contender.node.service.pid
            before = tree_cpu_seconds(pid)
            load = run_load(
                tools.wrk,
                contender.node.proxy_url + "/mock",
                connections=CONNECTIONS,
                seconds=context.duration,
                pinning=context.pinning,
                headers=headers,
            )
            used = tree_cpu_seconds(pid) - before
            per_second[contender.name].append(load.per_second)
            cpu[contender.name].append(used * 1e6 / load.requests)
            cpus_used[contender.name].append(used / load.seconds)
            context.progress(
                NAME,
                f"run {run_index}/{context.runs} {contender.name}: "
                f"{load.per_second:,.0f} req/s at c{CONNECTIONS}, "
                f"{used * 1e6 / load.requests:.1f} µs CPU per request, "
                f"{used / load.seconds:.2f} CPUs",
            )

    for name in per_second:
        result.add(name, f"req/s at c{CONNECTIONS}", "req/s", per_second[name])
        result.add(name, f"CPU per request at c{CONNECTIONS}", "µs", cpu[name])
        result.add(name, f"CPUs used at c{CONNECTIONS}", "CPUs", cpus_used[name])
    result.add(
        TWO,
        f"req/s at c{CONNECTIONS} ÷ 1 process",
        "×",
        [two / one for one, two in zip(per_second[ONE], per_second[TWO], strict=True)],
    )
    result.add(
        TWO,
        "CPU per request ÷ 1 process",
        "×",
        [two / one for one, two in zip(cpu[ONE], cpu[TWO], strict=True)],
    )
    result.notes.append(
        f"{ONE} pinned to one CPU; {TWO} unpinned, sharing the load CPU with wrk "
        "and the upstream: on a two-CPU machine the ratio is bounded by what the "
        "load generator leaves, CPU per request is the figure to compare"
    )


def _reloads(
    context: Context,
    tools: Tools,
    contender: _Contender,
    headers: dict[str, str],
    result: ScenarioResult,
) -> list[float]:
    """SIGHUP the node under load; return each reload's spread, in ms."""
    node = contender.node
    base = json.loads(contender.config.read_text())
    count = 10 if context.quick else 30
    spreads: list[float] = []
    lags: list[float] = []
    load = BackgroundLoad(
        tools.wrk,
        node.proxy_url + "/mock",
        connections=RELOAD_CONNECTIONS,
        pinning=context.pinning,
        headers=headers,
        limit=count * RELOAD_DEADLINE + 30,
    )
    try:
        for index in range(count):
            before = _status(node)["config"]["version"]
            contender.config.write_text(json.dumps(_variant(base, index)))
            sent = time.time()
            node.service.process.send_signal(signal.SIGHUP)
            swaps = _await_workers(node, before)
            spreads.append((max(swaps) - min(swaps)) * 1000)
            lags.append((max(swaps) - sent) * 1000)
    finally:
        outcome = load.stop()
    context.progress(
        NAME,
        f"{count} reloads under load: worker spread max {max(spreads):.2f} ms, "
        f"SIGHUP to last worker p50 {statistics.median(lags):.1f} ms",
    )
    result.add(TWO, "worker spread per reload, max", "ms", [max(spreads)])
    result.add(TWO, "worker spread per reload, p50", "ms", [percentile(spreads, 0.5)])
    result.add(TWO, "SIGHUP → every worker serves, p50", "ms", [percentile(lags, 0.5)])
    result.add(TWO, "SIGHUP → every worker serves, max", "ms", [max(lags)])
    failed = outcome.errors + outcome.non_2xx
    result.add(TWO, "failed requests during the reloads", "requests", [float(failed)])
    result.notes.append(
        f"{count} reloads under a background load of {RELOAD_CONNECTIONS} "
        "connections; a worker's swap time is its own clock reading when it "
        "swapped (wall clock, one per machine), as its node's /status reports it"
    )
    return spreads


def _variant(base: dict[str, Any], index: int) -> dict[str, Any]:
    """Return the config with one more route, different for every reload."""
    service_id = base["services"][0]["id"]
    extra = {
        "name": f"reload-{index}",
        "paths": [f"/reload-{index}"],
        "service": {"id": service_id},
    }
    return base | {"routes": [*base["routes"], extra]}


def _await_workers(node: DataPlane, before: int) -> list[float]:
    """Wait until every worker serves a version newer than `before`.

    Returns the wall-clock times at which the workers swapped to it.
    """
    deadline = time.monotonic() + RELOAD_DEADLINE
    while time.monotonic() < deadline:
        status = _status(node)
        version = status["config"]["version"]
        workers = status["workers"]
        if version > before and all(w["config"]["version"] == version for w in workers):
            return [float(w["config"]["swapped_at"]) for w in workers]
        time.sleep(STATUS_POLL)
    node.service.check_alive()
    raise ProcessError(
        f"the workers did not all serve a new config within "
        f"{RELOAD_DEADLINE:.0f} s: {node.service.log_tail()}"
    )


def _status(node: DataPlane) -> dict[str, Any]:
    with urllib.request.urlopen(node.status_url + "/status", timeout=5) as reply:
        body: dict[str, Any] = json.loads(reply.read())
        return body


def _check_answers(contender: _Contender, headers: dict[str, str]) -> None:
    """Raise unless the node proxies `/mock` and refuses it without credentials."""
    url = contender.node.proxy_url + "/mock"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            body = reply.read()
    except OSError as error:
        raise ProcessError(f"{contender.name} did not proxy /mock: {error}") from error
    if body != UPSTREAM_BODY.encode():
        raise ProcessError(f"{contender.name} answered {body[:80]!r} on /mock")
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            status = reply.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 401:
        raise ProcessError(f"{contender.name} let /mock through without credentials")
