"""Apply a config of 10,000 routes and 10,000 consumers to a node under load.

One data plane node (pinned core) runs in declarative mode behind nginx's
upstream. wrk keeps 10 connections busy on a route with basic-auth, and a
probe (`bench.probe`) times requests one after another on an 11th, while
the node is told to reload its file (SIGHUP):

- first from a small config to the large one (everything compiled), then
- between two large configs that differ by one route and one consumer (the
  node reuses what did not change), as many times as there are runs.

For each apply the node reports, in `/status`, how long it took from the
start of its compile to the swap (`compile_ms`); the probe's requests are
split into those before the SIGHUP (steady), those during the compile and
swap, and those during the whole reload (reading and checking the file
included). wrk's failed or non-2xx responses must be none. The node's
resident memory is read from /proc once the large config is served.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.nginx import start_upstream
from bench.outcome import ScenarioResult, Target, percentile
from bench.portico import DataPlane, start_data_plane
from bench.processes import ProcessError, Service, stop_all
from bench.scenarios.proxy import authorization, declarative_config
from bench.scenarios.routes import route_entity
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import BackgroundLoad, LoadError, run_load
from shared.credentials import hash_password

NAME = "reload"
TITLE = "Applying 10,000 routes + 10,000 consumers under load"
CONNECTIONS = 10
ROUTES = 10_000
CONSUMERS = 10_000
COMPILE_TARGET = 200.0  # ms
P99_FACTOR_TARGET = 2.0
RSS_TARGET = 150.0  # MB
_LIMIT = 240.0  # seconds: no load or probe outlives this, whatever happens
_POLL = 0.005  # seconds between two reads of the node's status

NODE = "portico"
FULL = "small → large config"
DELTA = "large → large config ± 1 route, 1 consumer"

_NAMESPACE = uuid.UUID("6a1d2b3c-4e5f-4a7b-8c9d-0e1f2a3b4c5d")
_STAMP = 1_700_000_000


def large_config(base: dict[str, Any], variant: int, stored: str) -> dict[str, Any]:
    """Return `base` (the proxy scenario's config) grown to 10,000 routes and
    consumers.

    `variant` adds route `/extra<variant>` and consumer `extra<variant>`, so
    two variants differ by one route and one consumer. Every added
    credential has the stored hash `stored`. `base` is left as it is.
    """
    config: dict[str, Any] = json.loads(json.dumps(base))
    service_id = config["services"][0]["id"]
    routes = list(config["routes"])
    routes += [route_entity(n, service_id) for n in range(ROUTES - len(routes))]
    routes.append(
        {
            "id": str(uuid.uuid5(_NAMESPACE, f"extra-route-{variant}")),
            "name": f"extra{variant}",
            "paths": [f"/extra{variant}"],
            "service": {"id": service_id},
        }
    )
    consumers = list(config["consumers"])
    credentials = list(config["basicauth_credentials"])
    names = [f"user{n}" for n in range(CONSUMERS - len(consumers))]
    for name in [*names, f"extra{variant}"]:
        consumer_id = str(uuid.uuid5(_NAMESPACE, f"consumer-{name}"))
        consumers.append({"id": consumer_id, "username": name})
        credentials.append(
            {
                "id": str(uuid.uuid5(_NAMESPACE, f"credential-{name}")),
                "consumer": {"id": consumer_id},
                "username": name,
                "password": stored,
            }
        )
    config |= {
        "routes": routes,
        "consumers": consumers,
        "basicauth_credentials": credentials,
    }
    # Fixed timestamps: without them a reload stamps every entity with the
    # file's time, and no entity would be the same as in the last version.
    for entities in config.values():
        if isinstance(entities, list):
            for entity in entities:
                entity.setdefault("created_at", _STAMP)
                entity.setdefault("updated_at", _STAMP)
    return config


@dataclass
class _Apply:
    """What one apply under load measured."""

    compile_ms: float
    reload_ms: float
    steady_p99_ms: float
    swap_p99_ms: float | None  # None: no probe request during the swap
    reload_p99_ms: float
    reload_max_ms: float
    swap_samples: int
    failed: int  # wrk's socket errors and non-2xx, plus the probe's

    @property
    def factor(self) -> float | None:
        if self.swap_p99_ms is None or self.steady_p99_ms <= 0:
            return None
        return self.swap_p99_ms / self.steady_p99_ms


@dataclass
class _Series:
    applies: list[_Apply] = field(default_factory=list)


def run(context: Context) -> ScenarioResult:
    """Measure applies under load; skip what cannot run, say why."""
    result = ScenarioResult(NAME, TITLE)
    try:
        tools = ensure_tools(install=context.install_tools)
    except ToolError as error:
        result.skip(str(error))
        result.targets = _targets({}, None, result.reason)
        return result
    if not context.has_module("data_plane.__main__"):
        result.skip("data_plane has no __main__ yet (python -m data_plane)")
        result.targets = _targets({}, None, result.reason)
        return result

    services: list[Service] = []
    series: dict[str, _Series] = {FULL: _Series(), DELTA: _Series()}
    rss: float | None = None
    try:
        rss = _measure(context, tools, context.scratch(NAME), services, series)
    except (ProcessError, LoadError, OSError) as error:
        result.fail(str(error))
    finally:
        stop_all(services)
    _record(result, series, rss)
    result.targets = _targets(series, rss, result.reason)
    return result


def _measure(
    context: Context,
    tools: Tools,
    scratch: Path,
    services: list[Service],
    series: dict[str, _Series],
) -> float | None:
    pinning = context.pinning
    upstream, upstream_port = start_upstream(tools.nginx, scratch, pinning)
    services.append(upstream)

    # The large configs are written once; a reload copies one over the file.
    stored = hash_password(str(uuid.uuid4()))
    base = declarative_config(upstream_port)
    variants = []
    for variant in (1, 2):
        path = scratch / f"large-{variant}.json"
        path.write_text(json.dumps(large_config(base, variant, stored)))
        variants.append(path)
    config_path = scratch / "portico.json"
    config_path.write_text(json.dumps(base))
    node = start_data_plane(
        "portico-dp",
        ["--declarative-config", str(config_path)],
        root=context.root,
        work_dir=scratch,
        pinning=pinning,
        cpu=pinning.contender_cpu,
    )
    services.append(node.service)

    url = node.proxy_url + "/mock"
    headers = {"Authorization": authorization()}
    run_load(
        tools.wrk,
        url,
        connections=CONNECTIONS,
        seconds=1,
        pinning=pinning,
        headers=headers,
    )

    steps = [(FULL, variants[0])]
    steps += [(DELTA, variants[(n + 1) % 2]) for n in range(context.runs)]
    rss = None
    for index, (kind, source) in enumerate(steps, start=1):
        measured = _apply_under_load(context, tools, node, config_path, source)
        series[kind].applies.append(measured)
        context.progress(
            NAME,
            f"apply {index}/{len(steps)} ({kind}): compile + swap "
            f"{measured.compile_ms:.0f} ms, reload {measured.reload_ms:.0f} ms; "
            f"probe p99 {measured.steady_p99_ms:.2f} ms steady, "
            f"{_ms(measured.swap_p99_ms)} during the swap "
            f"({measured.swap_samples} requests), "
            f"{measured.reload_p99_ms:.2f} ms during the reload; "
            f"{measured.failed} failed",
        )
        rss = _rss_mb(node.service.pid)
    return rss


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} ms"


def _apply_under_load(
    context: Context, tools: Tools, node: DataPlane, config_path: Path, source: Path
) -> _Apply:
    """Reload the node from `source` while wrk and the probe run."""
    steady = max(1.0, context.duration / 2)  # before the SIGHUP, and after the swap
    url = node.proxy_url + "/mock"
    headers = {"Authorization": authorization()}
    before = _status(node)["config"]

    load = BackgroundLoad(
        tools.wrk,
        url,
        connections=CONNECTIONS,
        pinning=context.pinning,
        headers=headers,
        limit=_LIMIT,
    )
    probe = subprocess.Popen(
        [
            *context.pinning.prefix(context.pinning.load_cpu),
            sys.executable,
            "-m",
            "bench.probe",
            url,
            "--seconds",
            str(_LIMIT),
            "--header",
            f"Authorization: {headers['Authorization']}",
        ],
        cwd=context.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # The status API is polled all along, so that its own cost weighs
        # on the steady phase as on the reload.
        _poll(node, until=time.monotonic() + steady)
        config_path.write_bytes(source.read_bytes())
        signalled = time.monotonic()
        os.kill(node.service.pid, signal.SIGHUP)
        after = _await_new_version(node, before, deadline=signalled + _LIMIT / 2)
        applied = time.monotonic()
        _poll(node, until=applied + steady)
    finally:
        probe.terminate()
        output, _ = probe.communicate(timeout=30)
        outcome = load.stop()

    samples = json.loads(output)["samples"]
    compile_ms = float(after.get("compile_ms") or 0.0)
    swap_start = applied - compile_ms / 1000
    quiet = [s[1] for s in samples if s[0] + s[1] < signalled]
    swap = [s[1] for s in samples if swap_start <= s[0] + s[1] and s[0] <= applied]
    reload = [s[1] for s in samples if signalled <= s[0] + s[1] and s[0] <= applied]
    failed = sum(1 for s in samples if not 200 <= s[2] < 300)
    failed += outcome.errors + outcome.non_2xx
    if not quiet or not reload:
        raise LoadError("the probe made no request before or during the reload")
    return _Apply(
        compile_ms=compile_ms,
        reload_ms=(applied - signalled) * 1000,
        steady_p99_ms=percentile(quiet, 0.99) * 1000,
        swap_p99_ms=percentile(swap, 0.99) * 1000 if swap else None,
        reload_p99_ms=percentile(reload, 0.99) * 1000,
        reload_max_ms=max(reload) * 1000,
        swap_samples=len(swap),
        failed=failed,
    )


def _status(node: DataPlane) -> dict[str, Any]:
    with urllib.request.urlopen(node.status_url + "/status", timeout=5) as reply:
        body: dict[str, Any] = json.loads(reply.read())
        return body


def _poll(node: DataPlane, *, until: float) -> None:
    """Read the status API every poll interval until `until`."""
    while time.monotonic() < until:
        _status(node)
        time.sleep(_POLL)


def _await_new_version(
    node: DataPlane, before: dict[str, Any], *, deadline: float
) -> dict[str, Any]:
    """Poll the status API until the node serves another config version."""
    while True:
        config: dict[str, Any] = _status(node)["config"]
        if config["version"] != before["version"]:
            return config
        if time.monotonic() > deadline:
            raise ProcessError("the node did not apply the new config in time")
        node.service.check_alive()
        time.sleep(_POLL)


def _rss_mb(pid: int) -> float | None:
    """Return the resident memory of `pid` in MB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _record(
    result: ScenarioResult, series: dict[str, _Series], rss: float | None
) -> None:
    for kind, measured in series.items():
        applies = measured.applies
        result.add(kind, "compile + swap", "ms", [a.compile_ms for a in applies])
        result.add(
            kind,
            "reload (file read and checked, compile, swap)",
            "ms",
            [a.reload_ms for a in applies],
        )
        result.add(kind, "probe p99, steady", "ms", [a.steady_p99_ms for a in applies])
        result.add(
            kind,
            "probe p99 during compile + swap",
            "ms",
            [a.swap_p99_ms for a in applies if a.swap_p99_ms is not None],
        )
        result.add(
            kind,
            "p99 during compile + swap ÷ steady p99",
            "×",
            [f for f in (a.factor for a in applies) if f is not None],
        )
        result.add(
            kind,
            "probe p99 during the reload",
            "ms",
            [a.reload_p99_ms for a in applies],
        )
        result.add(
            kind,
            "probe max during the reload",
            "ms",
            [a.reload_max_ms for a in applies],
        )
        result.add(kind, "failed requests", "", [float(a.failed) for a in applies])
    if rss is not None:
        result.add(NODE, "resident memory with the large config", "MB", [rss])


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _targets(
    series: dict[str, _Series], rss: float | None, reason: str
) -> list[Target]:
    targets = []
    for kind in (FULL, DELTA):
        applies = series[kind].applies if kind in series else []
        factors = [f for f in (a.factor for a in applies) if f is not None]
        targets += [
            Target.check(
                f"{kind}: compile + swap < {COMPILE_TARGET:.0f} ms under load "
                "(issue 4)",
                _median([a.compile_ms for a in applies]),
                "<",
                COMPILE_TARGET,
                "ms",
                reason=reason,
            ),
            Target.check(
                f"{kind}: no failed request (issue 4, all applies)",
                float(sum(a.failed for a in applies)) if applies else None,
                "<",
                1,
                "",
                reason=reason,
            ),
            Target.check(
                f"{kind}: p99 during compile + swap ≤ {P99_FACTOR_TARGET:.0f}× "
                "steady p99 (issue 4)",
                _median(factors),
                "<=",
                P99_FACTOR_TARGET,
                "×",
                reason=reason,
            ),
        ]
    targets.append(
        Target.check(
            f"{NODE}: resident memory with {ROUTES:,} routes + {CONSUMERS:,} "
            f"consumers < {RSS_TARGET:.0f} MB (issue 4)",
            rss,
            "<",
            RSS_TARGET,
            "MB",
            reason=reason,
        )
    )
    return targets
