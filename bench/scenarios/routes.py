"""Measure whether the router's cost grows with the number of routes.

Two data plane nodes proxy to the same nginx upstream, one pinned core
each in turn: one has the 10 routes the load asks for, the other has those
10 among 10,000 (a third each prefix, host and regex routes). wrk sends the
same 10 requests in turn to both (4 to prefix routes, 3 to host routes, 3
to regex routes); runs are interleaved and compared per run.
"""

from __future__ import annotations

import json
import statistics
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.cpu import tree_cpu_seconds
from bench.nginx import start_upstream
from bench.outcome import ScenarioResult, Target
from bench.portico import DataPlane, start_data_plane
from bench.processes import ProcessError, Service, stop_all
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import LoadError, rotating_script, run_load

NAME = "routes"
TITLE = "Routing at scale: 10,000 routes (prefix, host, regex) vs 10"
CONNECTIONS = 50
LARGE = 10_000
SMALL = 10
RATIO_TARGET = 0.95

FEW = f"portico {SMALL} routes"
MANY = f"portico {LARGE:,} routes"

_NAMESPACE = uuid.UUID("3c9e1f4e-7d5a-4b8e-9f61-0a2b3c4d5e6f")
# Route numbers the load asks for, spread over the whole range.
_HIT = (0, 3_333, 6_666, 9_999, 1, 4_444, 7_777, 2, 5_555, 8_888)


def route_entity(number: int, service_id: str) -> dict[str, Any]:
    """Return route `number`: a prefix, a host or a regex route by its rest by 3."""
    route: dict[str, Any] = {
        "id": str(uuid.uuid5(_NAMESPACE, f"route-{number}")),
        "name": f"route{number}",
        "service": {"id": service_id},
    }
    if number % 3 == 0:
        route["paths"] = [f"/p{number}/api"]
    elif number % 3 == 1:
        route["hosts"] = [f"h{number}.example.com"]
        route["paths"] = ["/"]
    else:
        route["paths"] = [f"~/x{number}/\\d+$"]
    return route


def request_for(number: int) -> tuple[str, str]:
    """Return the (path, Host) of a request that route `number` matches."""
    if number % 3 == 0:
        return f"/p{number}/api/items", "127.0.0.1"
    if number % 3 == 1:
        return "/items", f"h{number}.example.com"
    return f"/x{number}/42", "127.0.0.1"


def routing_config(upstream_port: int, count: int) -> dict[str, Any]:
    """Return a config with the routes the load asks for, `count` in all."""
    service_id = str(uuid.uuid5(_NAMESPACE, "service"))
    numbers = list(_HIT)
    numbers += [n for n in range(LARGE) if n not in _HIT][: max(0, count - SMALL)]
    return {
        "_format_version": "3.0",
        "services": [
            {
                "id": service_id,
                "name": "bench-upstream",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": upstream_port,
                "path": "/",
            }
        ],
        "routes": [route_entity(n, service_id) for n in sorted(numbers)],
    }


def requests() -> list[tuple[str, str]]:
    """Return the requests the load sends in turn."""
    return [request_for(n) for n in _HIT]


@dataclass(frozen=True)
class _Contender:
    name: str
    node: DataPlane


def run(context: Context) -> ScenarioResult:
    """Measure both nodes; skip what cannot run, say why."""
    result = ScenarioResult(NAME, TITLE)
    try:
        tools = ensure_tools(install=context.install_tools)
    except ToolError as error:
        result.skip(str(error))
        result.targets = [_target(None, result.reason)]
        return result
    if not context.has_module("data_plane.__main__"):
        result.skip("data_plane has no __main__ yet (python -m data_plane)")
        result.targets = [_target(None, result.reason)]
        return result

    services: list[Service] = []
    try:
        ratios = _measure(context, tools, context.scratch(NAME), services, result)
        result.targets = [_target(ratios, result.reason)]
    except (ProcessError, LoadError) as error:
        result.fail(str(error))
        result.targets = [_target(None, result.reason)]
    finally:
        stop_all(services)
    return result


def _target(ratios: list[float] | None, reason: str) -> Target:
    return Target.check(
        f"{MANY}: req/s at c{CONNECTIONS} ≥ {RATIO_TARGET}× {SMALL} routes (issue 4)",
        statistics.median(ratios) if ratios else None,
        ">=",
        RATIO_TARGET,
        "×",
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
    for name, count in ((FEW, SMALL), (MANY, LARGE)):
        path = scratch / f"routes-{count}.json"
        path.write_text(json.dumps(routing_config(upstream_port, count)))
        node = start_data_plane(
            f"portico-{count}",
            ["--declarative-config", str(path)],
            root=context.root,
            work_dir=scratch,
            pinning=pinning,
            cpu=pinning.contender_cpu,
            timeout=120,
        )
        services.append(node.service)
        contenders.append(_Contender(name, node))
        compile_ms = _status(node)["config"].get("compile_ms")
        if compile_ms is not None:
            result.add(name, "compile at start", "ms", [compile_ms])

    script = rotating_script(requests(), scratch / "rotate.lua")
    for contender in contenders:
        _check_answers(contender)
        run_load(
            tools.wrk,
            contender.node.proxy_url + "/",
            connections=CONNECTIONS,
            seconds=1,
            pinning=pinning,
            script=script,
        )

    per_second: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    ratios = []
    for run_index in range(1, context.runs + 1):
        for contender in contenders:
            before = tree_cpu_seconds(contender.node.service.pid)
            load = run_load(
                tools.wrk,
                contender.node.proxy_url + "/",
                connections=CONNECTIONS,
                seconds=context.duration,
                pinning=pinning,
                script=script,
            )
            used = tree_cpu_seconds(contender.node.service.pid) - before
            per_second[contender.name].append(load.per_second)
            cpu[contender.name].append(used * 1e6 / load.requests)
            context.progress(
                NAME,
                f"run {run_index}/{context.runs} {contender.name}: "
                f"{load.per_second:,.0f} req/s at c{CONNECTIONS}, "
                f"{used * 1e6 / load.requests:.1f} µs CPU per request",
            )
        ratios.append(per_second[MANY][-1] / per_second[FEW][-1])

    for contender in contenders:
        name = contender.name
        result.add(name, f"req/s at c{CONNECTIONS}", "req/s", per_second[name])
        result.add(name, f"CPU per request at c{CONNECTIONS}", "µs", cpu[name])
    result.add(MANY, f"req/s at c{CONNECTIONS} ÷ {SMALL} routes", "×", ratios)
    result.add(
        MANY,
        f"{SMALL} routes' CPU per request ÷ ours",
        "×",
        [few / many for few, many in zip(cpu[FEW], cpu[MANY], strict=True)],
    )
    return ratios


def _status(node: DataPlane) -> dict[str, Any]:
    with urllib.request.urlopen(node.status_url + "/status", timeout=5) as reply:
        body: dict[str, Any] = json.loads(reply.read())
        return body


def _check_answers(contender: _Contender) -> None:
    """Raise unless every request of the load reaches the upstream."""
    for path, host in requests():
        request = urllib.request.Request(
            contender.node.proxy_url + path, headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                status = reply.status
        except OSError as error:
            raise ProcessError(
                f"{contender.name} did not proxy {host}{path}: {error}"
            ) from error
        if status != 200:
            raise ProcessError(f"{contender.name} answered {status} to {host}{path}")
