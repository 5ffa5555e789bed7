"""Fixtures of the cluster listener tests: a store, pinned pairs, a listener."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# pytest puts only tests/ on sys.path; the harness lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from cluster_harness import (  # noqa: E402
    ClientPair,
    Cluster,
    MemoryStore,
    make_client_pair,
    running_cluster,
)

from control_plane.hub import SnapshotHub


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    for group_id in ("g1", "g2"):
        store.add_group(group_id)
    store.add_group("c1", composite=True)
    return store


@pytest.fixture
def pairs(tmp_path: Path, store: MemoryStore) -> dict[str, ClientPair]:
    made = {
        name: make_client_pair(tmp_path / "certs", name)
        for name in ("g1", "g2", "c1", "nowhere")
    }
    for group_id in ("g1", "g2", "c1"):
        store.pin(group_id, made[group_id].cert_pem)
    return made


@pytest.fixture
async def cluster(
    tmp_path: Path, store: MemoryStore, pairs: dict[str, ClientPair]
) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, store, SnapshotHub()) as cluster:
        yield cluster
