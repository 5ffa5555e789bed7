"""Portico's control plane: runtime groups, their configuration, data plane sync."""

from __future__ import annotations
