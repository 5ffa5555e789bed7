"""The workers scenario: its reloads change the config, its target is honest."""

from __future__ import annotations

import json
from pathlib import Path

from bench.context import Context
from bench.processes import Pinning
from bench.scenarios import workers
from bench.scenarios.proxy import declarative_config
from data_plane.declarative import DeclarativeLoader


def _context(root: Path) -> Context:
    return Context(
        quick=True,
        runs=1,
        duration=1.0,
        work_dir=root / "work",
        pinning=Pinning(False, 1, 0, "unpinned"),
        install_tools=False,
        root=root,
    )


def test_every_reload_serves_a_config_of_its_own(tmp_path: Path) -> None:
    base = declarative_config(8080)
    hashes = set()
    for index in range(3):
        path = tmp_path / f"variant-{index}.json"
        path.write_text(json.dumps(workers._variant(base, index)))
        snapshot = DeclarativeLoader(path).load()
        hashes.add(snapshot.hash)
        paths = [r["paths"][0] for r in snapshot.config["routes"]]
        assert "/mock" in paths and f"/reload-{index}" in paths
    assert len(hashes) == 3


def test_without_a_worker_pool_it_is_skipped_and_says_why(tmp_path: Path) -> None:
    result = workers.run(_context(tmp_path))
    assert result.status == "skipped"
    assert [t.status for t in result.targets] == ["skipped"]
    assert result.targets[0].reason == result.reason
    assert result.metrics == []
