"""Compare the data plane's proxy path with nginx on one core each.

An nginx upstream answers 200 with a small JSON body. Each contender is
pinned to one CPU, wrk and the upstream to the other; every contender keeps
its upstream connections alive; runs are interleaved so that drift hits all
contenders alike. Each run is a throughput load at 50 connections, then a
latency load at 10. Portico runs as one data plane node in declarative mode
with two routes to the same upstream: one behind basic-auth, one without
plugin; and as a second node whose config has 1,000 routes, each with its
own basic-auth plugin, and 1,000 consumers (issue 4), loaded on the same
route path as the others.
"""

from __future__ import annotations

import base64
import json
import statistics
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.cpu import tree_cpu_seconds
from bench.nginx import (
    UPSTREAM_BODY,
    proxy_config,
    start_nginx,
    start_upstream,
)
from bench.outcome import ScenarioResult, Target
from bench.portico import start_data_plane
from bench.processes import Pinning, ProcessError, Service, free_port, stop_all
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import LoadError, run_load
from shared.credentials import hash_password

NAME = "proxy"
TITLE = "Proxy path: Portico data plane vs nginx, one core each"
THROUGHPUT_CONNECTIONS = 50
LATENCY_CONNECTIONS = 10
RATIO_TARGET = 0.4
MANY_ROUTES = 1_000
MANY_RATIO_TARGET = 0.5
MANY_P50_TARGET = 0.25  # ms, at c10
MANY_P99_TARGET = 0.5  # ms, at c10
SUITE_RATIO_TARGET = 0.8  # of the same node's route without plugins
SPREAD_WARNING = 0.2
STARVED_SHARE = 80.0

_NAMESPACE = uuid.UUID("8f0b54a4-35d6-4b0c-9a5e-2d7f3c1e6b90")

USERNAME = "bench-user"
PASSWORD = "bench-password"

NGINX = "nginx"
PORTICO_AUTH = "portico basic-auth"
PORTICO_OPEN = "portico no plugin"
PORTICO_MANY = "portico 1,000 routes, basic-auth"
PORTICO_SUITE = "portico key-auth + rate-limiting + cors"
PORTICOS = (PORTICO_AUTH, PORTICO_OPEN, PORTICO_MANY, PORTICO_SUITE)
API_KEY = "bench-key"
ORIGIN = "http://app.example.test"


@dataclass(frozen=True)
class Contender:
    """A proxy under test: where to send the load and with which headers."""

    name: str
    url: str
    headers: dict[str, str]
    pid: int  # the process (tree) whose CPU time the requests cost


def declarative_config(upstream_port: int) -> dict[str, Any]:
    """Return the data plane config: /mock with basic-auth, /open without.

    Route /suite runs key-auth, rate-limiting (local, a limit never reached)
    and cors: the plugins a Kong user commonly stacks on one route.
    """
    service_id, consumer_id = str(uuid.uuid4()), str(uuid.uuid4())
    mock_id, open_id = str(uuid.uuid4()), str(uuid.uuid4())
    suite_id = str(uuid.uuid4())
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
            {
                "id": suite_id,
                "name": "suite",
                "paths": ["/suite"],
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
            },
            *(
                {
                    "id": str(uuid.uuid4()),
                    "name": name,
                    "route": {"id": suite_id},
                    "config": config,
                    "enabled": True,
                }
                for name, config in (
                    ("key-auth", {"key_names": ["apikey"]}),
                    ("rate-limiting", {"second": 1_000_000, "policy": "local"}),
                    ("cors", {"origins": [ORIGIN]}),
                )
            ),
        ],
        "keyauth_credentials": [
            {"id": str(uuid.uuid4()), "consumer": {"id": consumer_id}, "key": API_KEY}
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


def many_routes_config(upstream_port: int, count: int = MANY_ROUTES) -> dict[str, Any]:
    """Return a config of `count` routes, each with its own basic-auth plugin.

    Route `/mock` is the one loaded; the others (`/svc<n>`) sit in the router
    beside it. There are as many consumers as routes, each with a credential;
    the benchmark's is one of them. The other credentials share one stored
    hash, made once, so that neither side spends minutes hashing.
    """
    config = declarative_config(upstream_port)
    service_id = config["services"][0]["id"]
    mock = config["routes"][0]
    routes = [mock]
    routes += [
        {
            "id": str(uuid.uuid5(_NAMESPACE, f"route-{n}")),
            "name": f"svc{n}",
            "paths": [f"/svc{n}"],
            "strip_path": True,
            "service": {"id": service_id},
        }
        for n in range(count - 1)
    ]
    plugins = [
        {
            "id": str(uuid.uuid5(_NAMESPACE, f"plugin-{route['id']}")),
            "name": "basic-auth",
            "route": {"id": route["id"]},
            "config": {"hide_credentials": False},
            "enabled": True,
        }
        for route in routes
    ]
    stored = hash_password(str(uuid.uuid4()))
    consumers = list(config["consumers"])
    credentials = list(config["basicauth_credentials"])
    for n in range(count - 1):
        consumer_id = str(uuid.uuid5(_NAMESPACE, f"consumer-{n}"))
        consumers.append({"id": consumer_id, "username": f"user{n}"})
        credentials.append(
            {
                "id": str(uuid.uuid5(_NAMESPACE, f"credential-{n}")),
                "consumer": {"id": consumer_id},
                "username": f"user{n}",
                "password": stored,
            }
        )
    return config | {
        "routes": routes,
        "plugins": plugins,
        "consumers": consumers,
        "basicauth_credentials": credentials,
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
        result.targets = _targets({}, result)
        return result

    scratch = context.scratch(NAME)
    services: list[Service] = []
    try:
        _measure(context, tools, scratch, services, result)
    except ProcessError as error:
        result.fail(str(error))
    finally:
        stop_all(services)
    if not result.targets:
        result.targets = _targets({}, result)
    return result


def _targets(samples: dict[str, Samples], result: ScenarioResult) -> list[Target]:
    """Return the targets of issues 3 and 4 that this scenario measures."""
    reason = result.reason
    many = samples.get(PORTICO_MANY)
    p50 = p99 = None
    if many is not None and Samples.valid(many.p50):
        p50 = statistics.median(Samples.valid(many.p50))
        p99 = statistics.median(Samples.valid(many.p99))
    return [
        Target.check(
            f"{PORTICO_AUTH}: req/s at c{THROUGHPUT_CONNECTIONS} ≥ "
            f"{RATIO_TARGET}× nginx (issue 3)",
            _median_ratio(samples, PORTICO_AUTH),
            ">=",
            RATIO_TARGET,
            "×",
            reason=reason,
        ),
        Target.check(
            f"{PORTICO_SUITE}: req/s at c{THROUGHPUT_CONNECTIONS} ≥ "
            f"{SUITE_RATIO_TARGET}× the same node's route without plugins (issue 6)",
            _median_ratio(samples, PORTICO_SUITE, reference=PORTICO_OPEN),
            ">=",
            SUITE_RATIO_TARGET,
            "×",
            reason=reason,
        ),
        Target.check(
            f"{PORTICO_MANY}: req/s at c{THROUGHPUT_CONNECTIONS} ≥ "
            f"{MANY_RATIO_TARGET}× nginx (issue 4)",
            _median_ratio(samples, PORTICO_MANY),
            ">=",
            MANY_RATIO_TARGET,
            "×",
            reason=reason,
        ),
        Target.check(
            f"{PORTICO_MANY}: p50 at c{LATENCY_CONNECTIONS} ≤ "
            f"{MANY_P50_TARGET} ms (issue 4)",
            p50,
            "<=",
            MANY_P50_TARGET,
            "ms",
            reason=reason,
        ),
        Target.check(
            f"{PORTICO_MANY}: p99 at c{LATENCY_CONNECTIONS} ≤ "
            f"{MANY_P99_TARGET} ms (issue 4)",
            p99,
            "<=",
            MANY_P99_TARGET,
            "ms",
            reason=reason,
        ),
    ]


def _measure(
    context: Context,
    tools: Tools,
    scratch: Path,
    services: list[Service],
    result: ScenarioResult,
) -> None:
    pinning = context.pinning

    upstream, upstream_port = start_upstream(tools.nginx, scratch, pinning)
    services.append(upstream)

    contenders = [_start_nginx_proxy(tools, scratch, services, pinning, upstream_port)]
    contenders += _start_portico(context, scratch, services, result, upstream_port)
    contenders = [c for c in contenders if _answers_correctly(c, result)]

    _warm_up(context, tools, contenders)
    samples = _interleave(context, tools, contenders, result)

    for contender in contenders:
        _record(result, contender.name, samples[contender.name])
    _record_ratios(result, samples)
    _note_spread(result)
    _note_starved(result)
    result.targets = _targets(samples, result)
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
    return Contender(NGINX, f"http://127.0.0.1:{port}/mock", {}, services[-1].pid)


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
    credentials = {"Authorization": authorization()}
    contenders = [
        Contender(
            PORTICO_AUTH, f"{node.proxy_url}/mock", credentials, node.service.pid
        ),
        Contender(PORTICO_OPEN, f"{node.proxy_url}/open", {}, node.service.pid),
        Contender(
            PORTICO_SUITE,
            f"{node.proxy_url}/suite",
            {"apikey": API_KEY, "Origin": ORIGIN},
            node.service.pid,
        ),
    ]

    many_path = scratch / "portico-many.json"
    many_path.write_text(json.dumps(many_routes_config(upstream_port)))
    try:
        many = start_data_plane(
            "portico-dp-many",
            ["--declarative-config", str(many_path)],
            root=context.root,
            work_dir=scratch,
            pinning=context.pinning,
            cpu=context.pinning.contender_cpu,
        )
    except ProcessError as error:
        result.fail(f"data plane with {MANY_ROUTES:,} routes did not start: {error}")
        return contenders
    services.append(many.service)
    contenders.append(
        Contender(PORTICO_MANY, f"{many.proxy_url}/mock", credentials, many.service.pid)
    )
    return contenders


def _answers_correctly(contender: Contender, result: ScenarioResult) -> bool:
    """Return whether the contender proxies to the upstream, and authenticates.

    A contender that answers something else, or lets an anonymous request
    through a route with basic-auth, would be measured doing other work.
    """
    problem = ""
    status, body = _get(contender.url, contender.headers)
    if status != 200 or body != UPSTREAM_BODY.encode():
        problem = f"answered {status} {body[:80]!r}, not the upstream's body"
    elif contender.headers and _get(contender.url, {})[0] != 401:
        problem = "let a request without credentials through"
    if problem:
        message = f"{contender.name} left out: {problem}"
        result.notes.append(message)
        result.fail(message)
    return not problem


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        return 0, str(error).encode()


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
    cpu_per_request: list[float | None]  # microseconds, during the c50 load
    cpu_share: list[float | None]  # of one CPU, during the c50 load

    def add(
        self,
        throughput: float | None,
        p50: float | None,
        p99: float | None,
        cpu_per_request: float | None,
        cpu_share: float | None,
    ) -> None:
        """Append one run's figures (all None for an invalid run)."""
        self.throughput.append(throughput)
        self.p50.append(p50)
        self.p99.append(p99)
        self.cpu_per_request.append(cpu_per_request)
        self.cpu_share.append(cpu_share)

    @staticmethod
    def valid(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]


def _interleave(
    context: Context,
    tools: Tools,
    contenders: list[Contender],
    result: ScenarioResult,
) -> dict[str, Samples]:
    samples = {c.name: Samples([], [], [], [], []) for c in contenders}
    latency_seconds = max(1.0, context.duration * 2 / 3)

    for run_index in range(1, context.runs + 1):
        for contender in contenders:
            label = f"run {run_index}/{context.runs} {contender.name}"
            mine = samples[contender.name]
            try:
                cpu_before = tree_cpu_seconds(contender.pid)
                load = run_load(
                    tools.wrk,
                    contender.url,
                    connections=THROUGHPUT_CONNECTIONS,
                    seconds=context.duration,
                    pinning=context.pinning,
                    headers=contender.headers,
                )
                cpu = tree_cpu_seconds(contender.pid) - cpu_before
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
                mine.add(None, None, None, None, None)
                continue
            mine.add(
                load.per_second,
                quiet.p50_ms,
                quiet.p99_ms,
                cpu * 1e6 / load.requests,
                cpu / load.seconds,
            )
            # nginx runs first in each round, so its last value is this round's.
            base = None
            if contender.name != NGINX and NGINX in samples:
                base = samples[NGINX].throughput[-1]
            ratio = f" ({load.per_second / base:.2f}× nginx)" if base else ""
            context.progress(
                NAME,
                f"{label}: {load.per_second:,.0f} req/s at "
                f"c{THROUGHPUT_CONNECTIONS}{ratio}; p50 {quiet.p50_ms:.2f} ms, "
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
    result.add(
        name,
        f"CPU per request at c{THROUGHPUT_CONNECTIONS}",
        "µs",
        valid(samples.cpu_per_request),
    )
    result.add(
        name,
        f"share of its core used at c{THROUGHPUT_CONNECTIONS}",
        "%",
        [share * 100 for share in valid(samples.cpu_share)],
    )


def _run_ratios(
    samples: dict[str, Samples],
    name: str,
    field: str = "throughput",
    reference: str = NGINX,
) -> list[float]:
    """Return, per run, the contender's `field` divided by the reference's.

    Runs are interleaved, so run i of a contender is compared with run i of
    the reference (nginx unless named), taken moments apart; a run invalid on
    either side is left out.
    """
    if reference not in samples or name not in samples:
        return []
    mine: list[float | None] = getattr(samples[name], field)
    base: list[float | None] = getattr(samples[reference], field)
    return [m / b for m, b in zip(mine, base, strict=True) if m is not None and b]


def _median_ratio(
    samples: dict[str, Samples], name: str, reference: str = NGINX
) -> float | None:
    ratios = _run_ratios(samples, name, reference=reference)
    return statistics.median(ratios) if ratios else None


def _record_ratios(result: ScenarioResult, samples: dict[str, Samples]) -> None:
    for name in PORTICOS:
        result.add(
            name,
            f"req/s at c{THROUGHPUT_CONNECTIONS} ÷ nginx",
            "×",
            _run_ratios(samples, name),
        )
        # nginx's CPU per request over ours: what the throughput ratio would be
        # if both had a whole core to themselves.
        result.add(
            name,
            "nginx CPU per request ÷ ours",
            "×",
            [1 / r for r in _run_ratios(samples, name, "cpu_per_request") if r],
        )
    result.add(
        PORTICO_SUITE,
        f"req/s at c{THROUGHPUT_CONNECTIONS} ÷ {PORTICO_OPEN}",
        "×",
        _run_ratios(samples, PORTICO_SUITE, reference=PORTICO_OPEN),
    )


def _note_starved(result: ScenarioResult) -> None:
    for name in PORTICOS:
        share = result.find(
            name, f"share of its core used at c{THROUGHPUT_CONNECTIONS}"
        )
        if share is not None and share.median < STARVED_SHARE:
            result.notes.append(
                f"{name} used {share.median:.0f} % of its core: something else "
                "(the load generator, or other work on the machine) held it "
                "back, so its req/s understate it"
            )


def _note_spread(result: ScenarioResult) -> None:
    metric = result.find(NGINX, f"req/s at c{THROUGHPUT_CONNECTIONS}")
    if metric is None or len(metric.values) < 2:
        return
    spread = (metric.high - metric.low) / metric.median
    if spread > SPREAD_WARNING:
        result.notes.append(
            f"nginx's req/s varied by {spread:.0%} between runs: other work on "
            "the machine. Compare the per-run ratios, and CPU per request, "
            "which does not depend on how much CPU a contender was given"
        )
