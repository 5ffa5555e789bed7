"""Portico's data plane: the sync agent, the proxy and its plugins."""

from __future__ import annotations
