"""Plugin runtimes, resolved per route when a config is compiled."""

from __future__ import annotations
