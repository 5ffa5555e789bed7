"""Portico's data plane: the sync agent, the proxy and its plugins."""

from __future__ import annotations

from data_plane import native as _native

__version__ = "0.1.0"

# Before any request-path module is imported: they may come compiled.
_native.install()
