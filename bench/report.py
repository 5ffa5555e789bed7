"""Write a benchmark's results as Markdown for people and JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.outcome import Metric, ScenarioResult, Target

STATUS_MARK = {"met": "met", "not met": "**not met**", "skipped": "skipped"}


def write_report(
    out_dir: Path,
    name: str,
    header: dict[str, Any],
    results: Sequence[ScenarioResult],
) -> tuple[Path, Path]:
    """Write `<name>.md` and `<name>.json` into `out_dir`; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / f"{name}.md"
    data = out_dir / f"{name}.json"
    markdown.write_text(render_markdown(header, results))
    document = {**header, "scenarios": [r.as_dict() for r in results]}
    data.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return markdown, data


def render_markdown(header: dict[str, Any], results: Sequence[ScenarioResult]) -> str:
    """Return the whole report: run facts, machine, targets, then each scenario."""
    lines = [f"# Portico benchmark: {header['name']}", ""]
    lines += [
        f"- date (UTC): {header['date']}",
        f"- command: `{header['command']}`",
        f"- mode: {header['mode']}; {header['runs']} run(s) per contender, "
        f"{header['duration']:g} s per throughput load",
        f"- pinning: {header['pinning']}",
        f"- load average (1 / 5 / 15 min): {header['load_average']}",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {_cell(value)} |" for key, value in header["machine"].items()]

    lines += ["", "## Targets", "", "| target | measured | status |", "|---|---|---|"]
    for result in results:
        lines += [_target_row(target) for target in result.targets]

    for result in results:
        lines += ["", *_scenario(result)]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """Return `value` as text that cannot break a Markdown table row."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: float, unit: str) -> str:
    if unit == "×":
        return f"{value:.2f}×"
    if unit in ("ms", "µs"):
        return f"{value:.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if unit == "%":
        return f"{value:.0f} %"
    suffix = f" {unit}" if unit else ""
    if abs(value) >= 100 or value.is_integer():
        return f"{value:,.0f}{suffix}"
    return f"{value:.2f}{suffix}"


def _target_row(target: Target) -> str:
    if target.measured is None:
        measured = "—"
    else:
        measured = _number(target.measured, target.unit)
    status = STATUS_MARK[target.status]
    if target.status != "met":
        why = target.reason or ("no figure reported" if target.measured is None else "")
        if why:
            status = f"{status}: {why}"
    return f"| {_cell(target.description)} | {measured} | {_cell(status)} |"


def _scenario(result: ScenarioResult) -> list[str]:
    lines = [f"## {result.name}: {result.title}", ""]
    if result.status != "ok":
        lines += [f"**{result.status}: {_cell(result.reason)}**", ""]
    if result.metrics:
        lines += [
            "| contender | metric | median | min – max | runs |",
            "|---|---|---|---|---|",
        ]
        lines += [_metric_row(metric) for metric in result.metrics]
        lines.append("")
    lines += [f"- {note}" for note in result.notes]
    return lines


def _metric_row(metric: Metric) -> str:
    spread = "—"
    if len(metric.values) > 1:
        low, high = _number(metric.low, metric.unit), _number(metric.high, metric.unit)
        spread = f"{low} – {high}"
    return (
        f"| {_cell(metric.contender)} | {_cell(metric.name)} | "
        f"{_number(metric.median, metric.unit)} | {spread} | {len(metric.values)} |"
    )
