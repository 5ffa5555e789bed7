"""Start the echo upstream: `python -m echo_upstream --listen 127.0.0.1:8080`."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from echo_upstream.app import app


class _Server(uvicorn.Server):
    """Uvicorn's server, exiting 0 on SIGTERM and SIGINT.

    Uvicorn re-raises the signal once it has shut down, so the process would
    end with a signal status; a clean stop is a success here.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.handle_exit)
        yield


def _bind(host: str, port: int) -> socket.socket:
    """Return a socket bound to host:port; OSError if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the echo app until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m echo_upstream",
        description=(
            "Run a mockbin-like upstream: /request/... (and any other path) "
            "echoes the request's method, path, query, headers and body as "
            "JSON, or as an HTML page when the client's Accept prefers "
            "text/html. /status/<code>, /delay/<ms>, /stream/<n>, "
            "/bytes/<n> and /reply (the request's body back, with the query's "
            "type, encoding and chunked=1) serve tests and benchmarks."
        ),
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=os.environ.get("PORTICO_ECHO_LISTEN", "127.0.0.1:8080"),
        help="address to listen on (env PORTICO_ECHO_LISTEN, default %(default)s)",
    )
    args = parser.parse_args(argv)
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        print(
            f"error: --listen must be host:port, got {args.listen!r}", file=sys.stderr
        )
        return 1
    host = host.strip("[]") or "127.0.0.1"
    try:
        sock = _bind(host, int(port))
    except OSError as exc:
        reason = (
            "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        )
        print(
            f"error: --listen: cannot listen on {args.listen}: {reason}",
            file=sys.stderr,
        )
        return 1
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    with sock:
        _Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
