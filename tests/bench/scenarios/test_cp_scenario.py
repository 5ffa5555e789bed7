"""The cp scenario folds in whatever the control plane's modules print."""

from __future__ import annotations

from pathlib import Path

from bench.context import Context
from bench.processes import Pinning
from bench.scenarios import cp

UNPINNED = Pinning(False, 1, 0, "tests run unpinned")


def _context(root: Path, tmp_path: Path) -> Context:
    return Context(
        quick=True,
        runs=1,
        duration=1.0,
        work_dir=tmp_path / "work",
        pinning=UNPINNED,
        install_tools=False,
        root=root,
    )


def _checkout(tmp_path: Path, modules: dict[str, str]) -> Path:
    root = tmp_path / "checkout"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "__init__.py").write_text("")
    for name, source in modules.items():
        (root / "bench" / f"{name}.py").write_text(source)
    return root


WRITES = (
    "import json\n"
    "print('starting')\n"
    "print(json.dumps({'name': 'cp_writes_sequential', 'per_s': 812.5}))\n"
    "print(json.dumps({'name': 'cp_writes_concurrent', 'per_s': 420.0,"
    " 'clients': 8}))\n"
    "print(json.dumps({'name': 'cp_composite_rebuild', 'ms_p50': 120.0,"
    " 'state': 'COMPOSITE_STATE_OK'}))\n"
)
MERGE = (
    "import json\n"
    "print(json.dumps({'name': 'composite_rebuild', 'ms_p50': 41.0, 'ms_max': 60.0}))\n"
)


def test_printed_figures_are_checked_against_their_targets(tmp_path: Path) -> None:
    root = _checkout(tmp_path, {"cp_writes": WRITES, "composite_merge": MERGE})
    result = cp.run(_context(root, tmp_path))
    statuses = [target.status for target in result.targets]
    assert result.status == "ok"
    assert statuses == ["met", "not met", "not met", "met"]


def test_every_numeric_field_becomes_a_metric(tmp_path: Path) -> None:
    root = _checkout(tmp_path, {"cp_writes": WRITES, "composite_merge": MERGE})
    result = cp.run(_context(root, tmp_path))
    clients = result.find("cp_writes_concurrent", "clients")
    assert clients is not None and clients.values == (8.0,)


def test_text_fields_become_notes(tmp_path: Path) -> None:
    root = _checkout(tmp_path, {"cp_writes": WRITES})
    result = cp.run(_context(root, tmp_path))
    assert "cp_composite_rebuild: state=COMPOSITE_STATE_OK" in result.notes


def test_absent_modules_skip_the_scenario_with_the_reason(tmp_path: Path) -> None:
    result = cp.run(_context(_checkout(tmp_path, {}), tmp_path))
    assert result.status == "skipped"
    assert "bench.cp_writes" in result.reason
    assert {target.status for target in result.targets} == {"skipped"}


def test_a_crashing_module_fails_the_scenario_with_its_error(tmp_path: Path) -> None:
    root = _checkout(tmp_path, {"cp_writes": "raise SystemExit('no database')\n"})
    result = cp.run(_context(root, tmp_path))
    assert result.status == "failed"
    assert "no database" in result.reason
