"""A mockbin-like upstream that echoes requests, for walkthroughs and tests."""

from __future__ import annotations
