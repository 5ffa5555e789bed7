"""Run a data plane node: the proxy, the status API and its config source.

The config comes from the control plane through the sync agent, or from a
declarative file (reloaded on SIGHUP). Every config from the control plane is
also kept in ``<prefix>/config.cache`` (:mod:`data_plane.cache`); a node that
starts serves that file until its control plane sends something newer.

The proxy runs in the node's own process, or with ``--workers N`` in N
worker processes that share its port (:mod:`data_plane.workers`); either
way the node has one config source, one status API and one state.

SIGTERM and SIGINT stop the node: it stops accepting, lets in-flight requests
finish (bounded), and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from data_plane import __version__, native
from data_plane.agent import SyncAgent, client_ssl_context, group_of_endpoint
from data_plane.cache import ConfigCache
from data_plane.declarative import DeclarativeLoader
from data_plane.metrics import REGISTRY, Registry, render
from data_plane.proxy.server import ProxyServer
from data_plane.router import prepare
from data_plane.runtime.switch import Switch, aside
from data_plane.settings import Address, Settings
from data_plane.status import StatusServer, served_config
from data_plane.workers import WorkerError, WorkerPool
from shared.errors import PorticoError
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 10.0


class StartupError(PorticoError):
    """Raised when the node cannot start; the message is one line for users."""


def load_node_id(prefix: Path) -> str:
    """Return the node id kept in `<prefix>/node_id`, creating it once."""
    path = prefix / "node_id"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        if path.exists():
            text = path.read_text().strip()
            with contextlib.suppress(ValueError):
                return str(uuid.UUID(text))
        node_id = str(uuid.uuid4())
        path.write_text(node_id + "\n")
    except OSError as exc:
        raise StartupError(f"cannot use prefix {prefix}: {exc.strerror}") from exc
    return node_id


def _check_readable(option: str, path: Path | None) -> None:
    if path is not None and not os.access(path, os.R_OK):
        raise StartupError(f"{option} {path}: file not found or not readable")


class InProcess:
    """Serve the proxy from the node's own process (``--workers 1``)."""

    def __init__(self) -> None:
        self.switch = Switch()
        self._proxy: ProxyServer | None = None

    @property
    def proxy(self) -> ProxyServer:
        assert self._proxy is not None, "prepare() first"
        return self._proxy

    async def prepare(self) -> None:
        """Make the proxy server; it accepts nothing before `start`."""
        self._proxy = ProxyServer(self.switch)

    async def start(self, host: str, port: int) -> None:
        """Accept proxy clients on host:port; OSError if it cannot be used."""
        await self.proxy.start(host, port)

    async def drain(self, timeout: float) -> None:
        """Stop accepting and let in-flight requests finish within `timeout`."""
        if self._proxy is not None:
            await self._proxy.drain(timeout)

    def snapshot(self) -> Snapshot | None:
        """Return the config being served."""
        return self.switch.snapshot()

    async def apply(self, snapshot: Snapshot) -> None:
        """Serve `snapshot`; PorticoError if it cannot be compiled."""
        await self.switch.apply(snapshot)

    def ready(self) -> bool:
        """Tell whether a config is being served."""
        return self.switch.current is not None

    def config(self) -> dict[str, Any]:
        """Return the status API's view of the config being served."""
        return served_config(self.switch.current)

    def counters(self) -> dict[str, int]:
        """Return the request counters since the node started."""
        return self.proxy.counters() if self._proxy is not None else {}

    async def metrics(self) -> tuple[Registry, dict[str, int]]:
        """Return this process's Prometheus counters and connection figures."""
        figures = self._proxy.figures() if self._proxy is not None else {}
        return REGISTRY, figures

    async def workers(self) -> list[dict[str, Any]]:
        """Describe the one process serving, as the status API lists workers."""
        current = self.switch.current
        config = served_config(current)
        config["swapped_at"] = current.applied_at if current is not None else None
        return [
            {
                "index": 0,
                "pid": os.getpid(),
                "state": "serving" if self._proxy is not None else "starting",
                "restarts": 0,
                "config": config,
                "counters": self.counters(),
            }
        ]


class Node:
    """One data plane node process, from startup to drained shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = ""
        self.proxies: InProcess | WorkerPool
        if settings.workers > 1:
            telemetry = settings.cluster_telemetry_endpoint is not None
            self.proxies = WorkerPool(
                settings.workers,
                drain_timeout=DRAIN_TIMEOUT,
                log_level=settings.log_level,
                # Telemetry reads the workers' counters as last reported.
                counters_interval=settings.cluster_telemetry_interval / 2
                if telemetry
                else None,
            )
        else:
            self.proxies = InProcess()
        self._agent: SyncAgent | None = None
        self._loader: DeclarativeLoader | None = None
        self._cache: ConfigCache | None = None
        # Where the config being served came from: "declarative", "cache"
        # (the last one applied, read back at start) or "control_plane".
        self.config_source: str | None = None
        self._stop = asyncio.Event()
        self._reloads: set[asyncio.Task[None]] = set()

    def control_plane_status(self) -> dict[str, Any]:
        """Return what the status API says about the control plane link."""
        if self._agent is None:
            return {"connected": False, "last_error": None}
        return {
            "connected": bool(self._agent.connected),
            "last_error": self._agent.last_error,
        }

    async def status(self) -> dict[str, Any]:
        """Return the body of `GET /status`."""
        workers = await self.proxies.workers()
        config = self.proxies.config()
        config["source"] = self.config_source if config["version"] is not None else None
        return {
            "config": config,
            "control_plane": self.control_plane_status(),
            "counters": self.proxies.counters(),
            "node_id": self.node_id,
            "version": __version__,
            "workers": workers,
        }

    async def metrics(self) -> str:
        """Return the body of `GET /metrics`: Prometheus text, node-wide."""
        registry, figures = await self.proxies.metrics()
        return render(
            registry,
            figures,
            node_id=self.node_id,
            version=__version__,
            config_hash=self.proxies.config()["hash"],
        )

    def stop(self) -> None:
        """Ask the node to shut down."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until stopped, then drain and close."""
        settings = self.settings
        self._check_settings()
        self.node_id = load_node_id(settings.prefix)
        status = StatusServer(self.status, self.proxies.ready, self.metrics)
        try:
            await self.proxies.prepare()
            await self._load_config()
            await _listen("--proxy-listen", settings.proxy_listen, self.proxies.start)
            await _listen("--status-listen", settings.status_listen, status.start)
        except BaseException:
            await self.proxies.drain(0)
            raise
        logger.info(
            "data plane node %s: proxy on %s (%s, %s), status on %s",
            self.node_id,
            settings.proxy_listen,
            f"{settings.workers} workers" if settings.workers > 1 else "1 process",
            "compiled" if native.state == "compiled" else "Python source",
            settings.status_listen,
        )

        agent_task = self._start_agent()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        try:
            await self._stop.wait()
        finally:
            logger.info("data plane node %s: shutting down", self.node_id)
            # Nothing changes the config while the proxies drain.
            tasks = [*self._reloads, *([agent_task] if agent_task else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await status.close()
            await self.proxies.drain(DRAIN_TIMEOUT)
            if self._cache is not None:
                await self._cache.flush()
            logger.info("data plane node %s: stopped", self.node_id)

    async def _load_config(self) -> None:
        """Serve the declarative file, or the cached config, before listening."""
        settings = self.settings
        # A bad declarative file must stop the start.
        if settings.declarative_config is not None:
            self._loader = DeclarativeLoader(settings.declarative_config)
            try:
                await self.proxies.apply(self._loader.load())
            except WorkerError:
                raise
            except PorticoError as exc:
                raise StartupError(f"--declarative-config: {exc}") from exc
            self.config_source = "declarative"
        elif settings.cluster_control_plane:
            # Serve the last config applied before the restart until the
            # control plane sends a newer one: it may be unreachable.
            group_id = group_of_endpoint(settings.cluster_control_plane)
            self._cache = ConfigCache(settings.prefix, group_id)
            await self._serve_cached(self._cache)

    def _check_settings(self) -> None:
        settings = self.settings
        _check_readable("--declarative-config", settings.declarative_config)
        if settings.cluster_control_plane:
            if settings.cluster_cert is None or settings.cluster_cert_key is None:
                raise StartupError(
                    "--cluster-cert and --cluster-cert-key are required "
                    "with --cluster-control-plane"
                )
            _check_readable("--cluster-cert", settings.cluster_cert)
            _check_readable("--cluster-cert-key", settings.cluster_cert_key)
            _check_readable("--cluster-ca-cert", settings.cluster_ca_cert)
            # A bad certificate must stop the start, not every connection.
            try:
                client_ssl_context(settings)
            except PorticoError as exc:
                raise StartupError(str(exc)) from exc
            try:
                group_of_endpoint(settings.cluster_control_plane)
            except PorticoError as exc:
                raise StartupError(f"--cluster-control-plane: {exc}") from None

    async def _serve_cached(self, cache: ConfigCache) -> None:
        snapshot = cache.load()
        if snapshot is None:
            return
        try:
            await self.proxies.apply(snapshot)
        except WorkerError:
            raise
        except PorticoError as exc:
            logger.warning("refusing cached config %s: %s", cache.path, exc)
            return
        self.config_source = "cache"

    async def _apply_from_control_plane(self, snapshot: Snapshot) -> None:
        await self.proxies.apply(snapshot)
        self.config_source = "control_plane"
        if self._cache is not None:
            self._cache.keep(snapshot)

    def _start_agent(self) -> asyncio.Task[None] | None:
        if not self.settings.cluster_control_plane:
            return None
        self._agent = SyncAgent(
            settings=self.settings,
            node_id=self.node_id,
            apply=self._apply_from_control_plane,
            current=self.proxies.snapshot,
            counters=self.proxies.counters,
            plugins=self.settings.plugins or None,
            ping_interval=self.settings.cluster_ping_interval,
            ping_timeout=self.settings.cluster_ping_interval,
            max_frame_size=self.settings.cluster_max_payload,
        )
        return asyncio.get_running_loop().create_task(self._agent.run())

    def _reload_soon(self) -> None:
        if self._loader is None:
            logger.info("data plane node %s: SIGHUP ignored, no file", self.node_id)
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Reload the declarative file; keep serving the old config if bad."""
        assert self._loader is not None, "reload without a declarative file"
        try:
            # Reading and checking a large file takes a while: off the loop,
            # and so does filing its new routes for the router.
            snapshot = await aside(_load_prepared, self._loader)
            await self.proxies.apply(snapshot)
        except PorticoError as exc:
            logger.warning(
                "data plane node %s: declarative config rejected: %s",
                self.node_id,
                exc,
            )


async def _listen(option: str, address: Address, start: Any) -> None:
    """Start a listener, turning a bind failure into a one-line error."""
    try:
        await start(address.host, address.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"{option}: cannot listen on {address}: {reason}") from exc


def _load_prepared(loader: DeclarativeLoader) -> Snapshot:
    """Load the declarative file and file its new routes for the router."""
    snapshot = loader.load()
    routes = snapshot.config.get("routes") or ()
    fresh = loader.fresh_routes
    if len(fresh) == len(routes):
        prepare(routes, whole=True)
    else:
        prepare(fresh)
    return snapshot
