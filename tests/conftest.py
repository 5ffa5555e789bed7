"""Settings shared by every test of Portico."""

from __future__ import annotations

import os
from pathlib import Path

# Deadlines in tests are multiples of this unit; slow machines raise it with
# PORTICO_TEST_TIMEOUT_SCALE.
TIMEOUT_SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))


def deadline(seconds: float) -> float:
    """Return a timeout of `seconds`, scaled for the machine running the tests."""
    return seconds * TIMEOUT_SCALE


def _find_specs() -> Path:
    """Return the folder of Kong's published API specs the contract tests read.

    They are the team's reference material kept beside the checkout (not part
    of it); PORTICO_SPECS_DIR names another place.
    """
    named = os.environ.get("PORTICO_SPECS_DIR")
    candidates = [Path(named)] if named else []
    candidates += [
        Path(__file__).resolve().parents[2] / "shared" / "specs",
        Path("/work/shared/specs"),
    ]
    for candidate in candidates:
        if (candidate / "konnect-runtime-groups-v2.yaml").is_file():
            return candidate
    raise RuntimeError(
        "Kong's API specs were not found in "
        + ", ".join(str(c) for c in candidates)
        + "; set PORTICO_SPECS_DIR to the folder holding them"
    )


SPECS = _find_specs()
