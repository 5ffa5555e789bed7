"""Hold many light sync clients on one control plane: `python -m bench.fleet`.

Each client is the data plane's own sync agent, with its own connection
and client certificate handshake, keeping its config in memory instead of
compiling it for a proxy: a data plane node as the control plane sees it,
at a fraction of the cost. All of them run in this one process.

The options are `--clients N` and the data plane's cluster options
(`--cluster-control-plane`, `--cluster-cert`, ...). The process talks JSON
lines: on stdout, once every client is connected and holds the same config
version,

    {"event": "ready", "version": 7, "clients": 1000, "seconds": 4.2}

then, for every line `{"wait": 7}` on stdin, once every client holds a
version newer than 7,

    {"event": "reached", "version": 8, "first": 812.1, "last": 812.3}

where `first` and `last` are when the first and the last client applied
it, read on the monotonic clock (one per machine, so that the process that
made the change can compare). The end of stdin ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence

import uvloop

from data_plane.agent import SyncAgent
from data_plane.settings import parse_settings
from shared.snapshot import Snapshot

READY_TIMEOUT = 180.0


class Client:
    """One light sync client: what it holds, and when each version came."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.config: Snapshot | None = None
        self.applied: list[tuple[int, float]] = []  # (version, monotonic time)

    async def apply(self, snapshot: Snapshot) -> None:
        self.config = snapshot
        self.applied.append((snapshot.version, time.monotonic()))
        self.fleet.changed()

    def current(self) -> Snapshot | None:
        return self.config

    def version(self) -> int | None:
        return None if self.config is None else self.config.version

    def reached(self, newer_than: int) -> float | None:
        """Return when this client first held a version newer than `newer_than`."""
        for version, at in self.applied:
            if version > newer_than:
                return at
        return None


class Fleet:
    """Many clients and a way to wait until all of them moved on."""

    def __init__(self) -> None:
        self.clients: list[Client] = []
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    async def settle(self, timeout: float) -> int:
        """Wait until every client holds the same version; return it."""
        deadline = time.monotonic() + timeout
        while True:
            versions = {client.version() for client in self.clients}
            if len(versions) == 1 and None not in versions:
                version = versions.pop()
                assert version is not None, "None was excluded above"
                return version
            await self._wait(
                deadline, f"clients hold versions {sorted(map(str, versions))}"
            )

    async def reach(self, newer_than: int, timeout: float) -> tuple[int, float, float]:
        """Wait until every client holds a newer version; return it and when."""
        deadline = time.monotonic() + timeout
        while True:
            times = [client.reached(newer_than) for client in self.clients]
            if None not in times:
                done = [t for t in times if t is not None]
                versions = [c.version() or 0 for c in self.clients]
                return min(versions), min(done), max(done)
            behind = times.count(None)
            await self._wait(
                deadline, f"{behind} clients still on version {newer_than}"
            )

    async def _wait(self, deadline: float, state: str) -> None:
        self._changed.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(state)
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            raise TimeoutError(state) from None


def _say(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def run(count: int, dp_options: Sequence[str], ready_timeout: float) -> None:
    """Connect `count` clients, report readiness, then answer wait commands."""
    settings = parse_settings(dp_options, {})
    fleet = Fleet()
    tasks = []
    started = time.monotonic()
    for index in range(count):
        client = Client(fleet)
        agent = SyncAgent(
            settings=settings,
            node_id=f"fleet-{index:05d}",
            apply=client.apply,
            current=client.current,
        )
        fleet.clients.append(client)
        tasks.append(asyncio.create_task(agent.run()))
        if index % 50 == 49:
            # Let the first handshakes proceed while the others are made.
            await asyncio.sleep(0)
    try:
        version = await fleet.settle(ready_timeout)
        seconds = time.monotonic() - started
        _say(
            {"event": "ready", "version": version, "clients": count, "seconds": seconds}
        )
        commands = await _lines()
        while line := await commands.readline():
            newer_than = int(json.loads(line)["wait"])
            try:
                reached, first, last = await fleet.reach(newer_than, ready_timeout)
            except TimeoutError as error:
                _say(
                    {"event": "timeout", "newer_than": newer_than, "state": str(error)}
                )
                continue
            _say({"event": "reached", "version": reached, "first": first, "last": last})
    except TimeoutError as error:
        _say({"event": "timeout", "state": str(error)})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fleet until stdin ends; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description="Light sync clients on one control plane; the remaining "
        "options are the data plane's cluster options.",
    )
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT)
    args, dp_options = parser.parse_known_args(argv)
    # Refusals and reconnections are the control plane's story, told there.
    logging.basicConfig(level=logging.ERROR)
    uvloop.run(run(args.clients, dp_options, args.ready_timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
