"""Carry the choices of one benchmark invocation to every scenario."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Pinning

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Context:
    """What a scenario needs to know about this invocation."""

    quick: bool
    runs: int
    duration: float
    work_dir: Path
    pinning: Pinning
    install_tools: bool = True
    root: Path = ROOT

    def progress(self, scenario: str, message: str) -> None:
        """Print one progress line, stamped with the wall-clock time."""
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} [{scenario}] {message}", file=sys.stderr, flush=True)

    def scratch(self, name: str) -> Path:
        """Return the directory for one scenario's files and logs, creating it."""
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def has_module(self, dotted: str) -> bool:
        """Return whether the checkout contains the module `dotted` (a file)."""
        relative = Path(*dotted.split("."))
        return (self.root / relative.with_suffix(".py")).is_file() or (
            self.root / relative / "__init__.py"
        ).is_file()
