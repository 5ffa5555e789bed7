"""Run one proxy worker of a data plane node started with ``--workers N``.

The node starts each worker as ``python -m data_plane.worker`` with one end
of a socket pair (:mod:`data_plane.channel`) and no other say in its
config: the worker applies the config frames the node sends, in the order
sent, answering each; starts accepting proxy clients when told, on a port
it shares with its siblings (SO_REUSEPORT); and answers status and metrics
requests at once, even while a large config compiles a slice at a time.
It reports its rate-limiting counts to the node and takes the node-wide
totals back, so that `local` limits hold for the node
(:mod:`data_plane.plugins.rate_limiting`).

SIGTERM drains a worker as it drains a node. A worker whose node is gone
(the socket pair reads its end) drains and exits too, so that no worker
outlives its node. A worker runs in a session of its own: a signal to the
node's process group (Ctrl-C in a terminal) reaches the node, which then
stops its workers in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Sequence

import uvloop

from data_plane import channel
from data_plane.channel import Channel, ChannelError
from data_plane.metrics import REGISTRY
from data_plane.plugins import rate_limiting
from data_plane.proxy.server import ProxyServer
from data_plane.runtime.deltas import patched_aside
from data_plane.runtime.switch import ASIDE_FRAME, Switch, aside
from data_plane.settings import LOG_LEVELS
from data_plane.status import served_config
from shared.errors import PorticoError, ProtocolError
from shared.messages import ConfigMessage, DeltaMessage, decode
from shared.snapshot import Snapshot

logger = logging.getLogger("data_plane.worker")


class Worker:
    """One proxy worker process: a switch, a proxy server, a channel to its node."""

    def __init__(self, channel_fd: int, index: int, *, drain_timeout: float) -> None:
        self.index = index
        self._fd = channel_fd
        self._drain_timeout = drain_timeout
        self.switch = Switch()
        self._proxy: ProxyServer | None = None
        self._failed = False

    async def run(self) -> int:
        """Serve until stopped or orphaned; return the process exit code."""
        sock = socket.socket(fileno=self._fd)
        link = await Channel.open(sock)
        proxy = self._proxy = ProxyServer(self.switch)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)

        # The reader answers status and metrics requests and takes
        # rate-limiting totals itself, and queues configs and the order to
        # listen for the applier, which takes them one by one.
        inbox: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        rate_limiting.share_counts(
            self.index, lambda rows: link.send_json(channel.TALLY, {"counts": rows})
        )
        reader = loop.create_task(self._read(link, inbox))
        applier = loop.create_task(self._apply_each(link, inbox))
        stopped = loop.create_task(stop.wait())
        tasks = {reader, applier, stopped}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    logger.error("proxy worker %d failed", self.index, exc_info=result)
                    self._failed = True
            if reader.done() and not stop.is_set() and not self._failed:
                logger.warning("proxy worker %d: the node is gone", self.index)
            await proxy.drain(self._drain_timeout)
            link.close()
        return 1 if self._failed else 0

    async def _read(
        self, link: Channel, inbox: asyncio.Queue[tuple[bytes, bytes]]
    ) -> None:
        while (message := await link.receive()) is not None:
            kind, body = message
            if kind == channel.STATUS:
                link.send_json(channel.REPORT, self._report())
            elif kind == channel.SCRAPE:
                link.send_json(channel.METRICS, self._metrics())
            elif kind == channel.TOTALS:
                rate_limiting.hear_counts(channel.load_counts(body, slot=self.index))
            elif kind in (channel.CONFIG, channel.LISTEN):
                inbox.put_nowait(message)
            else:
                raise ChannelError(f"unexpected message {kind!r} from the node")

    async def _apply_each(
        self, link: Channel, inbox: asyncio.Queue[tuple[bytes, bytes]]
    ) -> None:
        while True:
            kind, body = await inbox.get()
            if kind == channel.CONFIG:
                await self._apply(link, body)
            elif not await self._listen(link, channel.load(body)):
                self._failed = True
                return

    async def _apply(self, link: Channel, frame: bytes) -> None:
        # The node encoded this frame itself: one that does not parse is a
        # bug, and ends the worker.
        message = decode(frame)
        if not isinstance(message, ConfigMessage | DeltaMessage):
            raise ChannelError(f"a {message.TYPE} frame is no config")
        key = {"version": message.version, "hash": message.hash}
        try:
            snapshot = await self._snapshot_of(message, len(frame))
            await self.switch.apply(snapshot)
        except PorticoError as exc:
            link.send_json(channel.REFUSED, key | {"reason": str(exc)[:1024]})
            return
        except Exception as exc:
            logger.error(
                "proxy worker %d: applying config version %d failed",
                self.index,
                message.version,
                exc_info=True,
            )
            reason = f"{type(exc).__name__}: {exc}"[:1024]
            link.send_json(channel.REFUSED, key | {"reason": reason})
            return
        current = self.switch.current
        assert current is not None, "a config was just applied"
        link.send_json(
            channel.APPLIED,
            key
            | {
                "compile_ms": round(current.compile_seconds * 1000, 1),
                "swapped_at": current.applied_at,
            },
        )

    async def _snapshot_of(
        self, message: ConfigMessage | DeltaMessage, size: int
    ) -> Snapshot:
        """Return the config a frame brings, decoded aside when it is large.

        A delta applies to the config this worker serves (the node sends
        one only then); ProtocolError if it does not.
        """
        if isinstance(message, ConfigMessage):
            if size > ASIDE_FRAME:
                return await aside(message.to_snapshot)
            return message.to_snapshot()
        current = self.switch.snapshot()
        if current is None:
            raise ProtocolError("a delta came before any config")
        return await patched_aside(current, message)

    async def _listen(self, link: Channel, address: dict[str, object]) -> bool:
        assert self._proxy is not None, "listen before run"
        host, port = str(address["host"]), int(str(address["port"]))
        try:
            await self._proxy.start(host, port, reuse_port=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            link.send_json(channel.FAILED, {"errno": exc.errno, "reason": reason})
            return False
        link.send_json(channel.LISTENING, {"port": self._proxy.port})
        return True

    def _report(self) -> dict[str, object]:
        current = self.switch.current
        config = served_config(current)
        config["swapped_at"] = current.applied_at if current is not None else None
        counters = self._proxy.counters() if self._proxy is not None else {}
        return {"config": config, "counters": counters}

    def _metrics(self) -> dict[str, object]:
        figures = self._proxy.figures() if self._proxy is not None else {}
        return {"series": REGISTRY.dump(), "figures": figures}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a proxy worker for its node; return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m data_plane.worker",
        description="A proxy worker process; `python -m data_plane --workers N` "
        "starts these itself.",
    )
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--drain-timeout", type=float, required=True)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[worker {args.index}]: %(message)s",
    )
    worker = Worker(args.channel_fd, args.index, drain_timeout=args.drain_timeout)
    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(worker.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
