"""Run a data plane node's proxy as N worker processes on one port.

With ``--workers N`` (N ≥ 2) the node process keeps everything but the
proxy: the sync agent (one connection to the control plane per node,
however many workers), the cache, the declarative file and the status API.
Each worker is a ``python -m data_plane.worker`` process listening on the
proxy port with SO_REUSEPORT, so that the kernel spreads connections among
them, linked to the node by a socket pair (:mod:`data_plane.channel`).

A config reaches the workers as one encoded frame, the bytes a control
plane sends and the cache keeps, written to every worker's socket; each
worker answers when it serves the version, or why it refused it. Only when
every worker serves it does the node take the config for its own, report it
applied and keep it in its cache; so the node reports one state, and no
worker serves what the others refused.

A worker that exits is started again on the node's config before it
accepts a client: at once if it ran for a while, else after a delay that
doubles, up to 10 s, so that a worker that cannot start does not spin.
While a worker joins, configs wait, and the other way round.

The node adds up the workers' rate-limiting counts (:class:`NodeTotals`):
each TALLY a worker sends changes some totals, which go to every worker as
one TOTALS message; a worker started again first gets the totals of every
current window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import orjson

import data_plane
from data_plane import channel
from data_plane.agent import backoff
from data_plane.channel import Channel, ChannelError
from data_plane.metrics import NODE_TOTALS, Registry, add_figures
from data_plane.plugins.rate_limiting import NodeTotals
from data_plane.runtime.switch import ASIDE_ENTITIES
from shared.delta import diff, entity_count
from shared.errors import PorticoError, ValidationError
from shared.messages import DeltaMessage, encode_config
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

# A worker that ran this long before it exited is started again at once.
STABLE = 10.0
RESTART_INITIAL = 0.2
RESTART_MAX = 10.0
# How long a status request waits for a busy worker's answer.
REPORT_TIMEOUT = 1.0
# Counters that are not running totals, and so are not kept from dead workers.
_GAUGES = frozenset({"connections"})
# Names every worker process for the rate-limiting totals, never twice.
_SERIALS = itertools.count()


class WorkerError(PorticoError):
    """Raised when the proxy workers cannot be started."""


class WorkerProcess:
    """One worker process as the node sees it: its link and what it reported."""

    def __init__(
        self, index: int, process: asyncio.subprocess.Process, link: Channel
    ) -> None:
        self.index = index
        self.serial = next(_SERIALS)
        self.process = process
        self.link = link
        self.started = time.monotonic()
        self.listening = False
        self.exited = False
        self.failed: OSError | None = None  # why it could not listen
        # (version, hash) served, and the last (version, hash, reason) refused.
        self.serving: tuple[int, str] | None = None
        self.refused: tuple[int, str, str] | None = None
        self.compile_ms: float | None = None
        self.swapped_at: float | None = None
        self.counters: dict[str, int] = {}
        self.reports: deque[asyncio.Future[dict[str, Any] | None]] = deque()
        # The Prometheus counters it sent last, and the scrapes it owes.
        self.metrics: dict[str, Any] | None = None
        self.scrapes: deque[asyncio.Future[None]] = deque()

    @property
    def pid(self) -> int:
        return self.process.pid

    def settled(self, key: tuple[int, str]) -> bool:
        """Tell whether the worker answered the config `key`, either way."""
        return self.serving == key or (
            self.refused is not None and self.refused[:2] == key
        )


class WorkerPool:
    """Start N proxy workers, hand them each config, restart those that die."""

    def __init__(
        self,
        count: int,
        *,
        drain_timeout: float,
        log_level: str = "info",
        counters_interval: float | None = None,
    ) -> None:
        assert count >= 1, "a pool has at least one worker"
        self.count = count
        self._drain_timeout = drain_timeout
        self._log_level = log_level
        self._counters_interval = counters_interval
        self._slots: list[WorkerProcess | None] = [None] * count
        self._restarts = [0] * count
        self._delays: list[Generator[float] | None] = [None] * count
        # Totals counted by workers that exited since.
        self._retired: dict[str, int] = {}
        self._retired_series = Registry()
        self._retired_figures: dict[str, int] = {}
        # Rate-limiting counts, and whether a TOTALS message is due.
        self._totals = NodeTotals()
        self._sharing = False

        # The config every worker serves, as a snapshot and as its frame.
        self._snapshot: Snapshot | None = None
        self._frame: bytes | None = None
        self._applied_at: float | None = None

        # One config change or worker start at a time.
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._address: tuple[str, int] | None = None
        self._reservation: socket.socket | None = None
        self._started = False
        self._broken: str | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._restarting: set[asyncio.Task[None]] = set()

    # Lifecycle

    async def prepare(self) -> None:
        """Start the worker processes; they accept nothing before `start`."""
        for index in range(self.count):
            await self._spawn(index)
        if self._counters_interval is not None:
            self._keep(self._poll_counters(self._counters_interval))

    async def start(self, host: str, port: int) -> None:
        """Let every worker accept on host:port; OSError if it cannot be used."""
        self._reservation = _reserve(host, port)
        port = self._reservation.getsockname()[1]
        self._address = (host, port)
        workers = self._alive()
        for worker in workers:
            worker.link.send_json(channel.LISTEN, {"host": host, "port": port})
        await self._until(
            lambda: all(w.exited or w.listening or w.failed for w in workers)
        )
        for worker in workers:
            if worker.failed is not None:
                raise worker.failed
        self._started = True

    async def drain(self, timeout: float) -> None:
        """Stop every worker: each drains its connections within `timeout`."""
        self._stopping.set()
        # A restart under way ends at its next step, or spawns and is stopped.
        if self._restarting:
            await asyncio.wait(self._restarting, timeout=timeout)
        workers = self._alive()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(w.process.wait()) for w in workers]
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout + 5)
            if late:
                logger.warning("killing %d proxy workers still draining", len(late))
                for worker in workers:
                    if worker.process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            worker.process.kill()
                await asyncio.wait(waits)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in workers:
            worker.link.close()
        if self._reservation is not None:
            self._reservation.close()

    # Config

    def snapshot(self) -> Snapshot | None:
        """Return the config every worker serves."""
        return self._snapshot

    async def apply(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` on every worker; ValidationError if they refuse it."""
        async with self._lock:
            large = entity_count(snapshot.config) > ASIDE_ENTITIES
            if large:
                frame = await asyncio.to_thread(encode_config, snapshot)
            else:
                frame = encode_config(snapshot)
            # A worker serving the previous config gets the changes only:
            # for a small change to a large config, it decodes a few
            # entities instead of all of them.
            previous, changes = self._snapshot, None
            if previous is not None and previous.group_id == snapshot.group_id:
                if large:
                    changes = await asyncio.to_thread(_delta_frame, previous, snapshot)
                else:
                    changes = _delta_frame(previous, snapshot)
            base = (previous.version, previous.hash) if previous else None
            key = (snapshot.version, snapshot.hash)
            workers = self._alive()
            for worker in workers:
                worker.refused = None
                if changes is not None and worker.serving == base:
                    worker.link.send(channel.CONFIG, changes)
                else:
                    worker.link.send(channel.CONFIG, frame)
            await self._until(lambda: all(w.exited or w.settled(key) for w in workers))

            refused = [w.refused for w in workers if not w.exited and w.refused]
            if refused:
                accepted = [w for w in workers if not w.exited and w.serving == key]
                if accepted:
                    # Compiling is deterministic; a split means a fault in
                    # one process. Those that took the config start afresh
                    # on the one the node still serves.
                    logger.error(
                        "proxy workers disagree on config version %d; "
                        "restarting the %d that applied it",
                        snapshot.version,
                        len(accepted),
                    )
                    for worker in accepted:
                        worker.process.kill()
                raise ValidationError(refused[0][2])
            self._snapshot, self._frame = snapshot, frame
            self._applied_at = time.time()

    # Status

    def ready(self) -> bool:
        """Tell whether the node serves a config on at least one worker."""
        return self._snapshot is not None and any(w.listening for w in self._alive())

    def config(self) -> dict[str, Any]:
        """Return the status API's view of the node's config."""
        snapshot = self._snapshot
        if snapshot is None or self._applied_at is None:
            return {
                "version": None,
                "hash": None,
                "group_id": None,
                "applied_at": None,
                "compile_ms": None,
            }
        key = (snapshot.version, snapshot.hash)
        compiles = [
            w.compile_ms
            for w in self._alive()
            if w.serving == key and w.compile_ms is not None
        ]
        return {
            "version": snapshot.version,
            "hash": snapshot.hash,
            "group_id": snapshot.group_id,
            "applied_at": int(self._applied_at),
            # The slowest worker's: the node served it once that one did.
            "compile_ms": max(compiles) if compiles else None,
        }

    def counters(self) -> dict[str, int]:
        """Return the request counters of every worker, as last reported."""
        total = dict(self._retired)
        for worker in self._alive():
            for name, value in worker.counters.items():
                total[name] = total.get(name, 0) + value
        return total

    async def workers(self) -> list[dict[str, Any]]:
        """Ask every worker what it serves; describe each for the status API."""
        slots = list(enumerate(self._slots))
        reports = await asyncio.gather(*(self._ask(w) for _, w in slots))
        return [
            self._describe(index, worker, report)
            for (index, worker), report in zip(slots, reports, strict=True)
        ]

    def _describe(
        self, index: int, worker: WorkerProcess | None, report: dict[str, Any] | None
    ) -> dict[str, Any]:
        if worker is None or worker.exited:
            state = "stopped" if self._stopping.is_set() else "restarting"
        else:
            state = "serving" if worker.listening else "starting"
        if report is not None:
            config = report["config"]
        else:
            # A worker gone, or busy past the timeout: what it said last.
            served = worker.serving if worker is not None else None
            swapped_at = worker.swapped_at if worker is not None else None
            config = {
                "version": served[0] if served else None,
                "hash": served[1] if served else None,
                "group_id": None,
                "applied_at": int(swapped_at) if swapped_at is not None else None,
                "compile_ms": worker.compile_ms if worker is not None else None,
                "swapped_at": swapped_at,
            }
        return {
            "index": index,
            "pid": worker.pid if worker is not None else None,
            "state": state,
            "restarts": self._restarts[index],
            "config": config,
            "counters": dict(worker.counters) if worker is not None else {},
        }

    async def _ask(self, worker: WorkerProcess | None) -> dict[str, Any] | None:
        """Return the worker's report; None if it is gone or too busy to answer."""
        if worker is None or worker.exited:
            return None
        answer: asyncio.Future[dict[str, Any] | None] = (
            asyncio.get_running_loop().create_future()
        )
        worker.reports.append(answer)
        worker.link.send(channel.STATUS)
        try:
            return await asyncio.wait_for(answer, REPORT_TIMEOUT)
        except TimeoutError:
            return None

    async def metrics(self) -> tuple[Registry, dict[str, int]]:
        """Ask every worker for its Prometheus counters; return the node's sums.

        A worker too busy to answer within the timeout counts with what it
        sent last; one that exited counts with what it sent before, so the
        totals do not fall back when a worker is restarted.
        """
        await asyncio.gather(*(self._scrape(w) for w in self._alive()))
        registry = Registry()
        registry.absorb(self._retired_series.dump())
        figures = dict(self._retired_figures)
        for worker in self._alive():
            if worker.metrics is not None:
                registry.absorb(worker.metrics["series"])
                add_figures(figures, worker.metrics["figures"])
        return registry, figures

    async def _scrape(self, worker: WorkerProcess) -> None:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        worker.scrapes.append(answer)
        worker.link.send(channel.SCRAPE)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer, REPORT_TIMEOUT)

    async def _poll_counters(self, interval: float) -> None:
        # Telemetry reads counters without waiting; keep them fresh.
        while True:
            await asyncio.sleep(interval)
            await asyncio.gather(*(self._ask(w) for w in self._alive()))

    # Workers

    def _alive(self) -> list[WorkerProcess]:
        return [w for w in self._slots if w is not None and not w.exited]

    def _keep(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        # Wake every waiter; each checks its own condition again.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            if self._broken is not None:
                raise WorkerError(self._broken)
            await self._changed.wait()

    async def _spawn(self, index: int) -> WorkerProcess:
        parent, child = socket.socketpair()
        # The worker imports this checkout's packages, however the node did.
        root = str(Path(data_plane.__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "data_plane.worker",
                "--channel-fd",
                str(child.fileno()),
                "--index",
                str(index),
                "--drain-timeout",
                str(self._drain_timeout),
                "--log-level",
                self._log_level,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(child.fileno(),),
                start_new_session=True,
                env=env,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        link = await Channel.open(parent)
        worker = WorkerProcess(index, process, link)
        self._slots[index] = worker
        self._keep(self._read(worker))
        self._keep(self._watch(worker))
        logger.info("proxy worker %d started: pid %d", index, process.pid)
        return worker

    async def _read(self, worker: WorkerProcess) -> None:
        try:
            while (message := await worker.link.receive()) is not None:
                self._take(worker, *message)
                self._notify()
        except ChannelError as exc:
            logger.error("proxy worker %d broke its channel: %s", worker.index, exc)
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()

    def _take(self, worker: WorkerProcess, kind: bytes, body: bytes) -> None:
        if kind == channel.TALLY:
            self._totals.add(worker.serial, channel.load_counts(body))
            if not self._sharing:
                # Tallies that arrive together leave in one message.
                self._sharing = True
                asyncio.get_running_loop().call_soon(self._share_totals)
            return
        value = channel.load(body)
        if kind == channel.APPLIED:
            worker.serving = (value["version"], value["hash"])
            worker.compile_ms = value["compile_ms"]
            worker.swapped_at = value["swapped_at"]
        elif kind == channel.REFUSED:
            worker.refused = (value["version"], value["hash"], value["reason"])
        elif kind == channel.LISTENING:
            worker.listening = True
        elif kind == channel.FAILED:
            worker.failed = OSError(value["errno"], value["reason"])
        elif kind == channel.REPORT:
            worker.counters = dict(value["counters"])
            while worker.reports:
                answer = worker.reports.popleft()
                if not answer.done():
                    answer.set_result(value)
                    break
        elif kind == channel.METRICS:
            worker.metrics = value
            while worker.scrapes:
                scrape = worker.scrapes.popleft()
                if not scrape.done():
                    scrape.set_result(None)
                    break
        else:
            raise ChannelError(f"unexpected message {kind!r} from a worker")

    def _share_totals(self) -> None:
        self._sharing = False
        rows = self._totals.changed(self._serials())
        if rows:
            body = orjson.dumps({"counts": rows})
            for worker in self._alive():
                worker.link.send(channel.TOTALS, body)

    def _serials(self) -> list[int | None]:
        return [w.serial if w is not None else None for w in self._slots]

    async def _watch(self, worker: WorkerProcess) -> None:
        code = await worker.process.wait()
        worker.exited = True
        worker.link.close()
        for answer in worker.reports:
            if not answer.done():
                answer.set_result(None)
        for scrape in worker.scrapes:
            if not scrape.done():
                scrape.set_result(None)
        for name, value in worker.counters.items():
            if name not in _GAUGES:
                self._retired[name] = self._retired.get(name, 0) + value
        if worker.metrics is not None:
            self._retired_series.absorb(worker.metrics["series"])
            totals = worker.metrics["figures"]
            add_figures(
                self._retired_figures, {name: totals.get(name) for name in NODE_TOTALS}
            )
        self._notify()
        if self._stopping.is_set():
            return
        how = f"signal {-code}" if code < 0 else f"code {code}"
        if not self._started:
            self._broken = f"proxy worker {worker.index} exited with {how} at start"
            self._notify()
            return
        logger.warning(
            "proxy worker %d (pid %d) exited with %s; starting it again",
            worker.index,
            worker.pid,
            how,
        )
        task = self._keep(self._restart(worker))
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    async def _restart(self, dead: WorkerProcess) -> None:
        index = dead.index
        if time.monotonic() - dead.started >= STABLE:
            self._delays[index] = None
        delays = self._delays[index]
        if delays is None:
            delay = 0.0
            self._delays[index] = backoff(RESTART_INITIAL, RESTART_MAX)
        else:
            delay = next(delays)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        async with self._lock:
            if self._stopping.is_set():
                return
            self._restarts[index] += 1
            worker = await self._spawn(index)
            # Queued in order: the worker knows the node's rate-limiting
            # counts and serves the config before it listens.
            rows = self._totals.current(self._serials())
            if rows:
                worker.link.send_json(channel.TOTALS, {"counts": rows})
            if self._frame is not None:
                worker.link.send(channel.CONFIG, self._frame)
            assert self._address is not None, "restarts begin after start"
            host, port = self._address
            worker.link.send_json(channel.LISTEN, {"host": host, "port": port})


def _delta_frame(previous: Snapshot, snapshot: Snapshot) -> bytes:
    """Return the delta frame from `previous` to `snapshot`."""
    delta = diff(previous.config, snapshot.config)
    message = DeltaMessage.from_delta(previous.version, previous.hash, snapshot, delta)
    return message.serialize()


def _reserve(host: str, port: int) -> socket.socket:
    """Bind the proxy address for the workers to share; OSError if taken.

    The socket never listens, so it takes no connections; it holds the
    port (an ephemeral one too) while workers come and go, and fails at
    once when another program has the address.
    """
    family, kind, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # As asyncio's listeners do, so that both bind alike.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
