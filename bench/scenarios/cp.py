"""Fold in the control plane's own benchmarks: admin writes and composite rebuild.

`bench/cp_writes.py` and `bench/composite_merge.py` are run as modules and
print one JSON object per line, e.g. `{"name": "cp_writes_sequential",
"per_s": 812.4}`. Every numeric field of every line becomes a metric; the
known names are checked against their targets. In quick mode they get
`--quick` when their source mentions that flag, and always the environment
variable PORTICO_BENCH_QUICK=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from bench.context import Context
from bench.outcome import ScenarioResult, Target

NAME = "cp"
TITLE = "Control plane: admin writes and composite rebuild"
MODULES = ("bench.cp_writes", "bench.composite_merge")
WRITES_TARGET = 500.0
REBUILD_TARGET_MS = 100.0

SEQUENTIAL = "cp_writes_sequential"
CONCURRENT = "cp_writes_concurrent"
REBUILD = "composite_rebuild"


def run(context: Context) -> ScenarioResult:
    """Run each benchmark module that exists and check the known figures."""
    result = ScenarioResult(NAME, TITLE)
    lines: list[dict[str, Any]] = []
    absent: list[str] = []
    for module in MODULES:
        if not context.has_module(module):
            absent.append(module)
            continue
        context.progress(NAME, f"running python -m {module}")
        lines += _run_module(context, module, result)
    if absent and len(absent) < len(MODULES):
        result.notes.append("not built yet: " + ", ".join(absent))

    for line in lines:
        name = str(line.get("name", "unnamed"))
        for key, value in line.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                result.add(name, key, _unit(key), [float(value)])

    result.targets = _targets(lines, absent, result)
    if not lines:
        if len(absent) == len(MODULES):
            return result.skip("not built yet: " + ", ".join(absent))
        return result.fail("; ".join(result.notes) or "no benchmark printed a figure")
    return result


def _run_module(
    context: Context, module: str, result: ScenarioResult
) -> list[dict[str, Any]]:
    path = context.root.joinpath(*module.split(".")).with_suffix(".py")
    argv = [sys.executable, "-m", module]
    if context.quick and "--quick" in path.read_text(errors="replace"):
        argv.append("--quick")
    env = {**os.environ, "PORTICO_BENCH_QUICK": "1" if context.quick else "0"}
    timeout = 60 if context.quick else 300

    try:
        done = subprocess.run(
            argv,
            cwd=context.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result.notes.append(f"{module}: stopped after {timeout} s")
        return []
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        result.notes.append(f"{module}: exit code {done.returncode}: {tail}")

    lines = [_parse(line) for line in done.stdout.splitlines()]
    found = [line for line in lines if line is not None]
    for line in found:
        context.progress(NAME, f"{module}: {json.dumps(line)}")
    if not found:
        result.notes.append(f"{module}: printed no JSON line")
    return found


def _parse(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _unit(key: str) -> str:
    if key.startswith("ms") or key.endswith("_ms"):
        return "ms"
    if key.endswith("per_s"):
        return "/s"
    return ""


def _figure(lines: list[dict[str, Any]], name: str, key: str) -> float | None:
    for line in lines:
        if str(line.get("name", "")).startswith(name):
            value = line.get(key)
            if isinstance(value, int | float):
                return float(value)
    return None


def _targets(
    lines: list[dict[str, Any]], absent: list[str], result: ScenarioResult
) -> list[Target]:
    writes_reason = "bench/cp_writes.py not built yet" if MODULES[0] in absent else ""
    merge_reason = (
        "bench/composite_merge.py not built yet" if MODULES[1] in absent else ""
    )
    if not lines and not writes_reason:
        writes_reason = "; ".join(result.notes)
    return [
        Target.check(
            "admin entity writes, sequential ≥ 500/s (issue 2)",
            _figure(lines, SEQUENTIAL, "per_s"),
            ">=",
            WRITES_TARGET,
            "/s",
            reason=writes_reason,
        ),
        Target.check(
            "admin entity writes, 8 concurrent clients ≥ 500/s (issue 2)",
            _figure(lines, CONCURRENT, "per_s"),
            ">=",
            WRITES_TARGET,
            "/s",
            reason=writes_reason,
        ),
        Target.check(
            "composite rebuild, 10 members × 1,000 entities, p50 < 100 ms (issue 2)",
            _figure(lines, REBUILD, "ms_p50"),
            "<",
            REBUILD_TARGET_MS,
            "ms",
            reason=merge_reason,
        ),
    ]
