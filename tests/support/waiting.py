"""Wait for a condition in a test, within a deadline scaled for the machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# As tests.conftest.deadline: slow machines raise PORTICO_TEST_TIMEOUT_SCALE.
_SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))


def eventually(probe: Callable[[], T | None], seconds: float = 20) -> T:
    """Return the first truthy result of `probe`, or fail after the deadline."""
    end = time.monotonic() + seconds * _SCALE
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"condition not met within {seconds}s")
        time.sleep(0.02)
