"""The protocol-level HTTP proxy: client connections and the upstream pool."""

from __future__ import annotations
