"""Start the echo upstream: `python -m echo_upstream --listen 127.0.0.1:8080`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from echo_upstream.app import app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the echo app until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m echo_upstream",
        description="Run a mockbin-like upstream that echoes requests as JSON.",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=os.environ.get("PORTICO_ECHO_LISTEN", "127.0.0.1:8080"),
        help="address to listen on (env PORTICO_ECHO_LISTEN, default %(default)s)",
    )
    args = parser.parse_args(argv)
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        print(
            f"error: --listen must be host:port, got {args.listen!r}", file=sys.stderr
        )
        return 1
    try:
        uvicorn.run(
            app,
            host=host.strip("[]") or "127.0.0.1",
            port=int(port),
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
        )
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
