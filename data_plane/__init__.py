"""Portico's data plane: the sync agent, the proxy and its plugins."""

from __future__ import annotations

__version__ = "0.1.0"
