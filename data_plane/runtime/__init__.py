"""Compile snapshots into what the proxy runs, and swap them atomically."""

from __future__ import annotations
