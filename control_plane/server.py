"""Run the control plane: the admin API and the cluster listener, one loop.

Start order: open the store, make sure an admin token exists, load the
persisted snapshots into the hub, start the cluster listener, then serve the
admin API with uvicorn until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from control_plane.app import create_app
from control_plane.auth import ensure_admin_token
from control_plane.hub import SnapshotHub
from control_plane.settings import Listen, Settings
from control_plane.store.base import Store
from control_plane.store.sqlite import SqliteStore

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """Uvicorn's server, leaving signals to the control plane's loop.

    Uvicorn re-raises SIGTERM after its shutdown, which would end the process
    with a signal status; the control plane stops cleanly and exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StartupError(Exception):
    """Raised when the control plane cannot start; its message is one line."""


def _bind(listen: Listen, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    # Naming the protocol lets asyncio set TCP_NODELAY on accepted connections;
    # without it a kept-alive client waits for a delayed ACK on every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        reason = (
            "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        )
        raise StartupError(f"cannot listen on {listen} ({what}): {reason}") from exc
    return sock


def _cluster_listener(store: Store, hub: SnapshotHub, settings: Settings) -> Any:
    try:
        from control_plane.cluster.listener import ClusterListener
    except ImportError:
        # Remove when control_plane.cluster.listener is always present.
        logger.warning(
            "cluster listener not available; data plane nodes cannot connect"
        )
        return None
    return ClusterListener(
        store=store,
        hub=hub,
        settings=settings,
        max_frame_size=settings.cluster_max_payload,
        ping_interval=settings.cluster_ping_interval,
        ping_timeout=settings.cluster_ping_interval,
    )


async def serve(settings: Settings) -> None:
    """Run until stopped; raise StartupError on a failure to start."""
    admin_socket = _bind(settings.admin_listen, "admin API")
    store = SqliteStore(settings.database)
    try:
        await store.open()
    except Exception as exc:
        admin_socket.close()
        raise StartupError(f"cannot open database {settings.database}: {exc}") from exc

    groups = await store.list_groups()
    logger.info("store %s open with %d runtime groups", settings.database, len(groups))
    hub = SnapshotHub()
    for snapshot, held in await store.current_snapshots():
        hub.publish(snapshot)
        hub.hold(snapshot.group_id, held)
    app = create_app(settings, store, hub)

    listener = _cluster_listener(store, hub, settings)
    app.state.listener = listener
    try:
        if listener is not None:
            try:
                await listener.start()
            except OSError as exc:
                # The listener's messages name the address or file at fault.
                raise StartupError(exc.strerror or str(exc)) from exc
        # After the listeners, so that a failed start does not use up the
        # one time the initial token is shown.
        token = await ensure_admin_token(store, settings.admin_token)
        if token is not None:
            # Printed once on first start so that nobody is locked out.
            print(f"portico: initial organization admin token: {token}", flush=True)
        config = uvicorn.Config(
            app,
            log_level=settings.log_level,
            access_log=False,
            lifespan="off",
            server_header=False,
            # Uvicorn's lines then take the control plane's logging format.
            log_config=None,
        )
        server = _Server(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.handle_exit, signum, None)
        logger.info("admin API listening on %s", settings.admin_listen)
        await server.serve(sockets=[admin_socket])
    finally:
        # Stop taking nodes, then let pending writes finish and close the store.
        if listener is not None:
            await listener.close()
        await store.close()
        admin_socket.close()


def run(settings: Settings) -> int:
    """Run the control plane; return the process exit status."""
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        print(f"portico: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
