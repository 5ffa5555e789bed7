"""Compare the data plane's proxy path with nginx on one core each.

An nginx upstream answers 200 with a small JSON body. Each contender is
pinned to one CPU, wrk and the upstream to the other; every contender keeps
its upstream connections alive; runs are interleaved so that drift hits all
contenders alike. Each run is a throughput load at 50 connections, then a
latency load at 10.
"""

from __future__ import annotations

import base64
import json
import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.nginx import proxy_config, start_nginx, upstream_config
from bench.outcome import ScenarioResult, Target
from bench.portico import start_data_plane
from bench.processes import Pinning, ProcessError, Service, free_port
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import LoadError, run_load

NAME = "proxy"
TITLE = "Proxy path: Portico data plane vs nginx, one core each"
THROUGHPUT_CONNECTIONS = 50
LATENCY_CONNECTIONS = 10
RATIO_TARGET = 0.4

USERNAME = "bench-user"
PASSWORD = "bench-password"

NGINX = "nginx"
PORTICO_AUTH = "portico basic-auth"
PORTICO_OPEN = "portico no plugin"


@dataclass(frozen=True)
class Contender:
    """A proxy under test: where to send the load and with which headers."""

    name: str
    url: str
    headers: dict[str, str]


def declarative_config(upstream_port: int) -> dict[str, Any]:
    """Return the data plane config: /mock with basic-auth, /open without."""
    service_id, consumer_id = str(uuid.uuid4()), str(uuid.uuid4())
    mock_id, open_id = str(uuid.uuid4()), str(uuid.uuid4())
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
        "routes": [
            {
                "id": mock_id,
                "name": "mock",
                "paths": ["/mock"],
                "strip_path": True,
                "service": {"id": service_id},
            },
            {
                "id": open_id,
                "name": "open",
                "paths": ["/open"],
                "strip_path": True,
                "service": {"id": service_id},
            },
        ],
        "consumers": [{"id": consumer_id, "username": USERNAME}],
        "plugins": [
            {
                "id": str(uuid.uuid4()),
                "name": "basic-auth",
                "route": {"id": mock_id},
                "config": {"hide_credentials": False},
                "enabled": True,
            }
        ],
        "basicauth_credentials": [
            {
                "id": str(uuid.uuid4()),
                "consumer": {"id": consumer_id},
                "username": USERNAME,
                # Clear text: the data plane hashes it when it loads the file.
                "password": PASSWORD,
            }
        ],
    }


def authorization() -> str:
    """Return the Authorization header value of the benchmark's credential."""
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    return f"Basic {token}"


def run(context: Context) -> ScenarioResult:
    """Measure every available contender; skip what cannot run, say why."""
    result = ScenarioResult(NAME, TITLE)
    try:
        tools = ensure_tools(install=context.install_tools)
    except ToolError as error:
        result.skip(str(error))
        result.targets = [_target(None, result.reason)]
        return result

    scratch = context.scratch(NAME)
    services: list[Service] = []
    try:
        _measure(context, tools, scratch, services, result)
    except ProcessError as error:
        result.fail(str(error))
    finally:
        for service in reversed(services):
            service.stop()
    if not result.targets:
        result.targets = [_target(None, result.reason)]
    return result


def _target(ratio: float | None, reason: str) -> Target:
    return Target.check(
        f"{PORTICO_AUTH}: req/s at c{THROUGHPUT_CONNECTIONS} ≥ "
        f"{RATIO_TARGET}× nginx (issue 3)",
        ratio,
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
) -> None:
    pinning = context.pinning

    # The upstream shares the load CPU with wrk, as in the reference method.
    upstream_port = free_port()
    services.append(
        start_nginx(
            tools.nginx,
            "upstream",
            upstream_config(scratch / "upstream", upstream_port),
            upstream_port,
            work_dir=scratch,
            pinning=pinning,
            cpu=pinning.load_cpu,
        )
    )

    contenders = [_start_nginx_proxy(tools, scratch, services, pinning, upstream_port)]
    contenders += _start_portico(context, scratch, services, result, upstream_port)

    _warm_up(context, tools, contenders)
    samples = _interleave(context, tools, contenders, result)

    for contender in contenders:
        _record(result, contender.name, samples[contender.name])
    _record_ratios(result, samples)
    result.targets = [_target(_median_ratio(samples, PORTICO_AUTH), result.reason)]
    if not result.metrics and result.status == "ok":
        result.fail("no run produced a measurement")


def _start_nginx_proxy(
    tools: Tools,
    scratch: Path,
    services: list[Service],
    pinning: Pinning,
    upstream_port: int,
) -> Contender:
    port = free_port()
    services.append(
        start_nginx(
            tools.nginx,
            "nginx-proxy",
            proxy_config(scratch / "nginx-proxy", port, upstream_port),
            port,
            work_dir=scratch,
            pinning=pinning,
            cpu=pinning.contender_cpu,
        )
    )
    return Contender(NGINX, f"http://127.0.0.1:{port}/mock", {})


def _start_portico(
    context: Context,
    scratch: Path,
    services: list[Service],
    result: ScenarioResult,
    upstream_port: int,
) -> list[Contender]:
    if not context.has_module("data_plane.__main__"):
        result.reason = "data_plane has no __main__ yet (python -m data_plane)"
        return []

    config_path = scratch / "portico.yaml"
    # JSON is also YAML, so either parser the data plane picks reads it.
    config_path.write_text(json.dumps(declarative_config(upstream_port), indent=2))
    try:
        node = start_data_plane(
            "portico-dp",
            ["--declarative-config", str(config_path)],
            root=context.root,
            work_dir=scratch,
            pinning=context.pinning,
            cpu=context.pinning.contender_cpu,
        )
    except ProcessError as error:
        result.fail(f"data plane did not start: {error}")
        return []
    services.append(node.service)
    return [
        Contender(
            PORTICO_AUTH, f"{node.proxy_url}/mock", {"Authorization": authorization()}
        ),
        Contender(PORTICO_OPEN, f"{node.proxy_url}/open", {}),
    ]


def _warm_up(context: Context, tools: Tools, contenders: list[Contender]) -> None:
    # One short load per contender fills connection pools and caches.
    for contender in contenders:
        try:
            run_load(
                tools.wrk,
                contender.url,
                connections=THROUGHPUT_CONNECTIONS,
                seconds=1,
                pinning=context.pinning,
                headers=contender.headers,
            )
        except LoadError as error:
            context.progress(NAME, f"warm-up {contender.name}: {error}")


@dataclass
class Samples:
    """One entry per run for one contender; None where the run was invalid."""

    throughput: list[float | None]
    p50: list[float | None]
    p99: list[float | None]

    @staticmethod
    def valid(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]


def _interleave(
    context: Context,
    tools: Tools,
    contenders: list[Contender],
    result: ScenarioResult,
) -> dict[str, Samples]:
    samples = {c.name: Samples([], [], []) for c in contenders}
    latency_seconds = max(1.0, context.duration * 2 / 3)

    for run_index in range(1, context.runs + 1):
        for contender in contenders:
            label = f"run {run_index}/{context.runs} {contender.name}"
            mine = samples[contender.name]
            try:
                load = run_load(
                    tools.wrk,
                    contender.url,
                    connections=THROUGHPUT_CONNECTIONS,
                    seconds=context.duration,
                    pinning=context.pinning,
                    headers=contender.headers,
                )
                quiet = run_load(
                    tools.wrk,
                    contender.url,
                    connections=LATENCY_CONNECTIONS,
                    seconds=latency_seconds,
                    pinning=context.pinning,
                    headers=contender.headers,
                )
            except LoadError as error:
                context.progress(NAME, f"{label}: invalid run: {error}")
                result.notes.append(f"{label}: invalid run: {error}")
                mine.throughput.append(None)
                mine.p50.append(None)
                mine.p99.append(None)
                continue
            mine.throughput.append(load.per_second)
            mine.p50.append(quiet.p50_ms)
            mine.p99.append(quiet.p99_ms)
            context.progress(
                NAME,
                f"{label}: {load.per_second:,.0f} req/s at "
                f"c{THROUGHPUT_CONNECTIONS}; p50 {quiet.p50_ms:.2f} ms, "
                f"p99 {quiet.p99_ms:.2f} ms at c{LATENCY_CONNECTIONS}",
            )
    return samples


def _record(result: ScenarioResult, name: str, samples: Samples) -> None:
    valid = Samples.valid
    result.add(
        name, f"req/s at c{THROUGHPUT_CONNECTIONS}", "req/s", valid(samples.throughput)
    )
    result.add(name, f"p50 at c{LATENCY_CONNECTIONS}", "ms", valid(samples.p50))
    result.add(name, f"p99 at c{LATENCY_CONNECTIONS}", "ms", valid(samples.p99))


def _run_ratios(samples: dict[str, Samples], name: str) -> list[float]:
    # Runs are interleaved, so run i of a contender is compared with run i of
    # nginx, taken moments apart; a run invalid on either side is left out.
    if NGINX not in samples or name not in samples:
        return []
    pairs = zip(samples[name].throughput, samples[NGINX].throughput, strict=True)
    return [m / b for m, b in pairs if m is not None and b]


def _median_ratio(samples: dict[str, Samples], name: str) -> float | None:
    ratios = _run_ratios(samples, name)
    return statistics.median(ratios) if ratios else None


def _record_ratios(result: ScenarioResult, samples: dict[str, Samples]) -> None:
    for name in (PORTICO_AUTH, PORTICO_OPEN):
        result.add(
            name,
            f"req/s at c{THROUGHPUT_CONNECTIONS} ÷ nginx",
            "×",
            _run_ratios(samples, name),
        )
