"""Settings shared by every test of Portico."""

from __future__ import annotations

import os

# Deadlines in tests are multiples of this unit; slow machines raise it with
# PORTICO_TEST_TIMEOUT_SCALE.
TIMEOUT_SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))


def deadline(seconds: float) -> float:
    """Return a timeout of `seconds`, scaled for the machine running the tests."""
    return seconds * TIMEOUT_SCALE
