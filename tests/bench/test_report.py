from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.outcome import ScenarioResult, Target
from bench.report import render_markdown, write_report

HEADER: dict[str, Any] = {
    "name": "example",
    "date": "2026-01-01 00:00:00",
    "command": "python -m bench --quick",
    "mode": "quick",
    "runs": 2,
    "duration": 3.0,
    "pinning": "contender on CPU 1",
    "load_average": "0.10 / 0.20 / 0.30 before, 1.00 / 0.50 / 0.40 after",
    "machine": {"cpu_model": "AMD EPYC", "cores": 2},
}


def _results() -> list[ScenarioResult]:
    ran = ScenarioResult("proxy", "Proxy")
    ran.add("nginx", "req/s at c50", "req/s", [80000.0, 82000.0])
    ran.targets.append(Target.check("ratio ≥ 0.4×", 0.5, ">=", 0.4, "×"))
    skipped = ScenarioResult("propagation", "Propagation").skip("not built yet: x")
    skipped.targets.append(
        Target.check("p99 < 50 ms", None, "<", 50, "ms", reason=skipped.reason)
    )
    return [ran, skipped]


def test_markdown_lists_every_target_with_its_status() -> None:
    text = render_markdown(HEADER, _results())
    assert "| ratio ≥ 0.4× | 0.50× | met |" in text
    assert "| p99 < 50 ms | — | skipped: not built yet: x |" in text


def test_markdown_shows_median_and_range_of_a_metric() -> None:
    text = render_markdown(HEADER, _results())
    assert (
        "| nginx | req/s at c50 | 81,000 req/s | 80,000 req/s – 82,000 req/s | 2 |"
        in text
    )


def test_markdown_states_why_a_scenario_was_skipped() -> None:
    assert "**skipped: not built yet: x**" in render_markdown(HEADER, _results())


def test_json_report_holds_machine_values_and_targets(tmp_path: Path) -> None:
    _, data = write_report(tmp_path, "example", HEADER, _results())
    document = json.loads(data.read_text())
    assert document["machine"]["cores"] == 2
    assert document["scenarios"][0]["metrics"][0]["values"] == [80000.0, 82000.0]
    assert document["scenarios"][1]["targets"][0]["status"] == "skipped"
