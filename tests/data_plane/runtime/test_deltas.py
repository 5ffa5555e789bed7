"""Deltas applied to the config a process serves."""

from __future__ import annotations

from typing import Any

import pytest

from data_plane.runtime.deltas import patched
from data_plane.workers import _delta_frame
from shared.errors import ProtocolError
from shared.messages import DeltaMessage, decode
from shared.snapshot import Snapshot, build_config, make_snapshot


def _snapshot(version: int, *paths: str) -> Snapshot:
    service: dict[str, Any] = {
        "id": "7c0f1b1e-6d1c-4a47-9d0e-6c2c1f0f0a01",
        "name": "echo",
        "host": "127.0.0.1",
        "port": 8080,
        "protocol": "http",
    }
    routes = [
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "name": f"r{n}",
            "paths": [path],
            "service": {"id": service["id"]},
        }
        for n, path in enumerate(paths)
    ]
    config = build_config({"services": [service], "routes": routes})
    return make_snapshot("group-1", version, config)


def _delta(previous: Snapshot, snapshot: Snapshot) -> DeltaMessage:
    message = decode(_delta_frame(previous, snapshot))
    assert isinstance(message, DeltaMessage)
    return message


def test_the_delta_a_node_sends_its_workers_rebuilds_the_new_config() -> None:
    before, after = _snapshot(1, "/a", "/b"), _snapshot(2, "/a", "/c", "/d")
    assert patched(before, _delta(before, after)) == after


def test_a_delta_from_another_version_is_refused() -> None:
    older, before = _snapshot(1, "/a"), _snapshot(2, "/a", "/b")
    after = _snapshot(3, "/a", "/b", "/c")
    with pytest.raises(ProtocolError, match="cannot apply to version 1"):
        patched(older, _delta(before, after))
