"""The propagation scenario never reports a figure it did not measure."""

from __future__ import annotations

from pathlib import Path

from bench.context import Context
from bench.processes import Pinning
from bench.scenarios import propagation


def test_missing_cluster_modules_skip_it_naming_them(tmp_path: Path) -> None:
    context = Context(
        quick=True,
        runs=1,
        duration=1.0,
        work_dir=tmp_path / "work",
        pinning=Pinning(False, 1, 0, "unpinned"),
        install_tools=False,
        root=tmp_path,
    )
    result = propagation.run(context)
    assert result.status == "skipped"
    assert "data_plane.agent" in result.reason
    assert [t.status for t in result.targets] == ["skipped", "skipped"]
    assert all("data_plane.agent" in t.reason for t in result.targets)
    assert result.metrics == []
