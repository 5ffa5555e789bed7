"""Run Portico's benchmarks and write a report: `python -m bench --help`."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.context import ROOT, Context
from bench.machine import describe
from bench.outcome import ScenarioResult
from bench.processes import detect_pinning
from bench.report import write_report
from bench.scenarios import SCENARIOS
from bench.tools import ToolError, Tools, ensure_tools, find_program

DEFAULT_OUT = ROOT / "bench" / "results"
WORK_ROOT = ROOT / "bench" / "work"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark Portico: proxy path against nginx, config propagation to "
            "data plane nodes, control plane writes. Installs nginx and wrk from "
            "Debian packages when they are missing; sends load to 127.0.0.1 only."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer and shorter runs (2 × 3 s); the whole thing under 2 minutes",
    )
    parser.add_argument(
        "--only",
        choices=sorted(SCENARIOS),
        action="append",
        metavar="SCENARIO",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per contender (default 3, quick 2)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds per throughput load (default 10, quick 2.5)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory for the report (default {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--name",
        help="report file name without extension (default: UTC time, + -quick)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_ROOT,
        help="where each invocation keeps its logs and generated configs "
        f"(default {WORK_ROOT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never run apt-get; skip what needs a missing nginx or wrk",
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.duration is not None and args.duration < 1:
        parser.error("--duration must be at least 1 second")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios in order, then write the report."""
    args = parse_args(argv)
    # Turn SIGTERM into SystemExit so every started process is stopped on the
    # way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    selected = list(dict.fromkeys(args.only or SCENARIOS))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = args.name or (f"{stamp}-quick" if args.quick else stamp)

    tools = _tools(install=not args.no_install and "proxy" in selected)
    pinning = detect_pinning(find_program("taskset"))
    context = Context(
        quick=args.quick,
        runs=args.runs or (2 if args.quick else 3),
        duration=args.duration or (2.5 if args.quick else 10.0),
        work_dir=args.work_dir / name,
        pinning=pinning,
        install_tools=not args.no_install,
    )

    load_before = _load_average()
    results = [_run_one(context, scenario) for scenario in selected]

    header: dict[str, Any] = {
        "name": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "command": shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "runs": context.runs,
        "duration": context.duration,
        "pinning": pinning.reason,
        "load_average": f"{load_before} before, {_load_average()} after",
        "machine": describe(ROOT, tools or _tools(install=False)),
    }
    markdown, data = write_report(args.out, name, header, results)

    for result in results:
        for target in result.targets:
            print(f"{target.status:>8}  {target.description}")
    print(f"report: {markdown}\n        {data}")
    return 1 if any(r.status == "failed" for r in results) else 0


def _load_average() -> str:
    # Other work on the machine skews every figure; the report says how busy
    # the machine was.
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _tools(*, install: bool) -> Tools | None:
    try:
        return ensure_tools(install=install)
    except ToolError as error:
        if install:
            print(f"warning: {error}", file=sys.stderr)
        return None


def _run_one(context: Context, name: str) -> ScenarioResult:
    context.progress(name, "starting")
    started = time.monotonic()
    # One broken scenario must not lose the figures of the others.
    try:
        result = SCENARIOS[name](context)
    except Exception as error:
        traceback.print_exc()
        result = ScenarioResult(name, name).fail(f"{type(error).__name__}: {error}")
    elapsed = time.monotonic() - started
    suffix = f": {result.reason}" if result.reason else ""
    context.progress(name, f"{result.status} after {elapsed:.0f} s{suffix}")
    return result


if __name__ == "__main__":
    sys.exit(main())
