"""Persistence of the control plane: one interface, one module per backend."""

from __future__ import annotations

from control_plane.store.base import Commit, CompositeStatus, EditResult, Store

__all__ = ["Commit", "CompositeStatus", "EditResult", "Store"]
