"""Fold in the control plane's own benchmarks: admin writes and composite rebuild.

`bench/cp_writes.py` and `bench/composite_merge.py` are run as modules and
print one JSON object per line, e.g. `{"name": "cp_writes_sequential",
"per_s": 812.4}`. Every numeric field of every line becomes a metric, every
other field a note; the known names are checked against their targets. In
quick mode the modules get `--quick` when their source mentions that flag,
and always the environment variable PORTICO_BENCH_QUICK=1.
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
WRITES_MODULE = "bench.cp_writes"
MERGE_MODULE = "bench.composite_merge"
MODULES = (WRITES_MODULE, MERGE_MODULE)
WRITES_TARGET = 500.0
REBUILD_TARGET_MS = 100.0

SEQUENTIAL = "cp_writes_sequential"
CONCURRENT = "cp_writes_concurrent"
STORE_REBUILD = "cp_composite_rebuild"
MERGE_REBUILD = "composite_rebuild"


def run(context: Context) -> ScenarioResult:
    """Run each benchmark module that exists and check the known figures."""
    result = ScenarioResult(NAME, TITLE)
    lines: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for module in MODULES:
        if not context.has_module(module):
            problems[module] = "not built yet"
            continue
        context.progress(NAME, f"running python -m {module}")
        found, problem = _run_module(context, module)
        lines += found
        if problem:
            problems[module] = problem
            result.notes.append(f"{module}: {problem}")

    for line in lines:
        _fold(line, result)
    result.targets = _targets(lines, problems)

    if not lines:
        if all(p == "not built yet" for p in problems.values()):
            return result.skip("not built yet: " + ", ".join(problems))
        return result.fail("; ".join(f"{m}: {p}" for m, p in problems.items()))
    return result


def _fold(line: dict[str, Any], result: ScenarioResult) -> None:
    name = str(line.get("name", "unnamed"))
    words = []
    for key, value in line.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            if key != "name":
                words.append(f"{key}={value}")
            continue
        result.add(name, key, _unit(key), [float(value)])
    if words:
        result.notes.append(f"{name}: {', '.join(words)}")


def _run_module(context: Context, module: str) -> tuple[list[dict[str, Any]], str]:
    """Run one module; return its JSON lines and what went wrong, if anything."""
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
        return [], f"stopped after {timeout} s"

    found = [line for line in map(_parse, done.stdout.splitlines()) if line]
    for line in found:
        context.progress(NAME, f"{module}: {json.dumps(line)}")
    if done.returncode != 0:
        errors = done.stderr.strip().splitlines()
        last = errors[-1] if errors else "no error output"
        return found, f"exit code {done.returncode}: {last}"
    if not found:
        return found, "printed no JSON line"
    return found, ""


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
        value = line.get(key)
        if line.get("name") == name and isinstance(value, int | float):
            return float(value)
    return None


def _targets(lines: list[dict[str, Any]], problems: dict[str, str]) -> list[Target]:
    def why(module: str) -> str:
        problem = problems.get(module, "")
        return f"bench/{module.split('.')[-1]}.py: {problem}" if problem else ""

    writes, merge = why(WRITES_MODULE), why(MERGE_MODULE)
    return [
        Target.check(
            "admin entity writes, sequential ≥ 500/s (issue 2)",
            _figure(lines, SEQUENTIAL, "per_s"),
            ">=",
            WRITES_TARGET,
            "/s",
            reason=writes,
        ),
        Target.check(
            "admin entity writes, 8 concurrent clients ≥ 500/s (issue 2)",
            _figure(lines, CONCURRENT, "per_s"),
            ">=",
            WRITES_TARGET,
            "/s",
            reason=writes,
        ),
        Target.check(
            "member write + composite rebuild through the store, 10 members × "
            "1,000 entities, p50 < 100 ms (issue 2)",
            _figure(lines, STORE_REBUILD, "ms_p50"),
            "<",
            REBUILD_TARGET_MS,
            "ms",
            reason=writes,
        ),
        Target.check(
            "composite merge + hash, 10 members × 1,000 entities, p50 < 100 ms "
            "(issue 2)",
            _figure(lines, MERGE_REBUILD, "ms_p50"),
            "<",
            REBUILD_TARGET_MS,
            "ms",
            reason=merge,
        ),
    ]
