"""Start a data plane node: `python -m data_plane --help` lists the options."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvloop

from data_plane import native
from data_plane.node import Node
from data_plane.settings import parse_settings
from shared.errors import PorticoError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node until it is stopped; return the process exit code."""
    try:
        settings = parse_settings(argv)
    except PorticoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "debug":
        # websockets logs each connection attempt at INFO; the sync agent
        # reports outages and refusals itself, once each.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    if native.state.startswith("stale"):
        logging.getLogger("data_plane").warning(
            "running the request path as Python: the compiled modules are %s "
            "(`make` or `python scripts/native.py build` rebuilds them)",
            native.state.removeprefix("stale: "),
        )
    node = Node(settings)
    try:
        uvloop.run(node.run())
    except PorticoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
