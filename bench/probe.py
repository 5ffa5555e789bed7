"""Time requests one after another while something else loads the server.

`python -m bench.probe URL --seconds S [--header 'Name: value']` sends GET
requests over one kept-alive connection, each as soon as the last one is
answered, and prints one JSON object: `samples`, a list of
`[start, seconds, status]` with `start` on the machine's monotonic clock
(the same clock as `time.monotonic()` in any other process), so that a
caller can pick out the requests made during an event it timed itself.
A request that fails at the socket has status 0 and opens a new connection.
SIGTERM ends the probe early; it still prints what it measured. A line on
stderr says when it has started.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("url", help="http://host:port/path to request")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument(
        "--header", action="append", default=[], help="'Name: value' (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=5.0)
    return parser.parse_args(argv)


def probe(
    url: str,
    seconds: float,
    headers: dict[str, str],
    timeout: float,
    stopped: Callable[[], bool] = lambda: False,
) -> list[list[float]]:
    """Request `url` back to back for `seconds` or until `stopped()`."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: http.client.HTTPConnection | None = None
    samples: list[list[float]] = []
    end = time.monotonic() + seconds
    while not stopped():
        started = time.monotonic()
        if started >= end:
            break
        try:
            if connection is None:
                connection = http.client.HTTPConnection(
                    parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
                )
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            if connection is not None:
                connection.close()
            connection = None
        samples.append([started, time.monotonic() - started, status])
    if connection is not None:
        connection.close()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Probe, then print the samples as JSON."""
    args = parse_args(argv)
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            print(f"bad --header {header!r}: want 'Name: value'", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    signals: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: signals.append(number))
    print("probe: started", file=sys.stderr, flush=True)
    samples = probe(
        args.url, args.seconds, headers, args.timeout, lambda: bool(signals)
    )
    json.dump({"samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
