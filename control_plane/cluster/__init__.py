"""Serve data plane nodes: the cluster and telemetry listeners.

:mod:`.listener` accepts node connections and pushes config versions,
:mod:`.telemetry` takes what nodes report, :mod:`.certificates` keeps the
pinned client certificates both listeners check, :mod:`.frames` serializes each
config version once, :mod:`.node` tracks one node's sync status and
:mod:`.propagation` measures how long versions take to reach nodes.
"""

from __future__ import annotations
