"""Keep a data plane node's config in step with its control plane.

The agent dials the runtime group's ``control_plane_endpoint`` over WebSocket
with the node's client certificate, says hello, and applies every config the
control plane pushes, newest first: frames that arrive while one is being
applied replace each other, so only the latest is applied next. Each apply
is answered with an applied or an error frame.

When the control plane is away the node keeps serving the config it has and
the agent reconnects with jittered exponential backoff (0.5 s up to 30 s).

Without ``--cluster-ca-cert`` the agent cannot verify the control plane and
accepts whatever certificate it presents; it says so once, as a warning.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
)
from websockets.frames import CloseCode

from data_plane.plugins.registry import FACTORIES
from data_plane.settings import Settings
from shared import __version__ as PORTICO_VERSION
from shared.errors import PorticoError, ProtocolError, ValidationError
from shared.messages import (
    MAX_FRAME_SIZE,
    Applied,
    ApplyError,
    ConfigMessage,
    Hello,
    Telemetry,
    decode,
)
from shared.snapshot import Snapshot

logger = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# A connection that ends sooner than this counts as a failed attempt, so a
# control plane that accepts and then refuses a node is not hammered.
STABLE_CONNECTION = 10.0
TELEMETRY_INTERVAL = 10.0
# Inflating and hashing a big config would stall the proxy; do it in a thread.
_THREAD_PAYLOAD = 256 * 1024


def backoff(
    initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX
) -> Generator[float]:
    """Yield reconnection delays: doubling up to `maximum`, each jittered."""
    delay = initial
    while True:
        # Full jitter within the upper half keeps nodes that lost the same
        # control plane from coming back in lockstep.
        yield random.uniform(delay / 2, delay)
        delay = min(delay * 2, maximum)


def endpoint_uri(endpoint: str, suffix: str) -> str:
    """Turn an https endpoint of a runtime group into its wss URI."""
    parts = urlsplit(endpoint)
    schemes = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ValidationError(f"expected an https:// endpoint URL, got {endpoint!r}")
    path = parts.path.rstrip("/") + suffix
    return urlunsplit((schemes[parts.scheme], parts.netloc, path, "", ""))


def _retryable(exc: Exception) -> Exception | None:
    # Every failure to connect may heal: the control plane restarts, the
    # certificate gets pinned, the group gets created. Only bugs are fatal.
    if isinstance(exc, OSError | TimeoutError | InvalidHandshake | InvalidStatus):
        return None
    return exc


class SyncAgent:
    """Receive config versions from the control plane and apply them."""

    def __init__(
        self,
        *,
        settings: Settings,
        node_id: str,
        apply: Callable[[Snapshot], Awaitable[None]],
        current: Callable[[], Snapshot | None],
        counters: Callable[[], Mapping[str, int]] | None = None,
        plugins: tuple[str, ...] | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        telemetry_interval: float = TELEMETRY_INTERVAL,
        max_frame_size: int = MAX_FRAME_SIZE,
    ) -> None:
        if not settings.cluster_control_plane:
            raise ValidationError("--cluster-control-plane is required")
        self._settings = settings
        self._node_id = node_id
        self._apply = apply
        self._current = current
        self._counters = counters
        self._plugins = tuple(sorted(FACTORIES)) if plugins is None else plugins
        self._backoff = (backoff_initial, backoff_max)
        self._ping = (ping_interval, ping_timeout)
        self._telemetry_interval = telemetry_interval
        self._max_frame_size = max_frame_size

        # A hello the control plane would refuse is better refused at start.
        try:
            self._hello(None).check()
        except ProtocolError as exc:
            raise ValidationError(f"cannot introduce this node: {exc}") from None
        self._uri = endpoint_uri(settings.cluster_control_plane, "/v1/outlet")
        self._ssl = self._ssl_context()
        self._connected = False
        self._last_error: str | None = None

    @property
    def connected(self) -> bool:
        """Tell whether a session with the control plane is open now."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Return why the last connection failed or ended, if it did."""
        return self._last_error

    def _ssl_context(self) -> ssl.SSLContext:
        settings = self._settings
        if settings.cluster_cert is None or settings.cluster_cert_key is None:
            raise ValidationError(
                "--cluster-cert and --cluster-cert-key are required with "
                "--cluster-control-plane"
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(settings.cluster_cert, settings.cluster_cert_key)
            if settings.cluster_ca_cert is not None:
                context.load_verify_locations(settings.cluster_ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise ValidationError(f"cannot load cluster certificates: {exc}") from None
        if settings.cluster_ca_cert is not None:
            # The control plane's generated certificate is a self-signed leaf.
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            logger.warning(
                "no --cluster-ca-cert given: the control plane's certificate "
                "is not verified"
            )
        return context

    async def run(self) -> None:
        """Stay in sync with the control plane until cancelled."""
        tasks = [asyncio.create_task(self._forever("sync", self._connect_forever))]
        if self._settings.cluster_telemetry_endpoint:
            tasks.append(asyncio.create_task(self._forever("telemetry", self._report)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forever(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        # A bug must not leave the node deaf to its control plane for good.
        failures = backoff(*self._backoff)
        while True:
            try:
                await step()
            except Exception as exc:
                logger.exception("%s agent failed; restarting it", what)
                if what == "sync":
                    self._last_error = f"sync agent failed: {exc}"
                await asyncio.sleep(next(failures))

    async def _connect_forever(self) -> None:
        delays: Generator[float] | None = None
        async for connection in connect(
            self._uri,
            ssl=self._ssl,
            compression=None,
            max_size=self._max_frame_size,
            ping_interval=self._ping[0],
            ping_timeout=self._ping[1],
            reconnect_delays=lambda: backoff(*self._backoff),
            process_exception=self._note_failure,
            proxy=None,
        ):
            started = time.monotonic()
            await self._session(connection)
            # connect() resets its backoff once a handshake succeeds; keep
            # backing off while sessions end early.
            if time.monotonic() - started < STABLE_CONNECTION:
                delays = delays or backoff(*self._backoff)
                await asyncio.sleep(next(delays))
            else:
                delays = None

    def _note_failure(self, exc: Exception) -> Exception | None:
        # Warn once per outage; websockets logs each retry at INFO.
        if self._last_error is None or not self._last_error.startswith("cannot"):
            logger.warning("cannot connect to the control plane: %s", exc)
        self._last_error = f"cannot connect to the control plane: {exc}"
        return _retryable(exc)

    def _hello(self, current: Snapshot | None) -> Hello:
        return Hello(
            node_id=self._node_id,
            hostname=socket.gethostname()[:255],
            portico_version=PORTICO_VERSION,
            plugins=self._plugins,
            config_version=None if current is None else current.version,
            config_hash=None if current is None else current.hash,
            labels=dict(self._settings.node_labels),
        )

    async def _session(self, connection: ClientConnection) -> None:
        """Serve one connection; two tasks read and apply, either ends both.

        The reader keeps only the newest config frame; the applier applies
        it and answers. When either task ends the other is cancelled.
        """
        hello = self._hello(self._current())
        inbox = _Latest()
        reader = asyncio.create_task(self._read(connection, inbox))
        applier = asyncio.create_task(self._apply_each(connection, inbox))
        cancelled = True
        try:
            await connection.send(hello.serialize())
            self._connected = True
            self._last_error = None
            logger.info("connected to the control plane at %s", self._uri)
            await asyncio.wait({reader, applier}, return_when=asyncio.FIRST_COMPLETED)
            cancelled = False
        except ConnectionClosed:
            cancelled = False
        finally:
            for task in (reader, applier):
                task.cancel()
            results = await asyncio.gather(reader, applier, return_exceptions=True)
            if cancelled:
                self._connected = False
        try:
            await self._end(connection, results)
        finally:
            # Cleared after _end noted why, so that a caller seeing the node
            # disconnected also sees the reason.
            self._connected = False

    async def _end(
        self, connection: ClientConnection, results: Sequence[BaseException | None]
    ) -> None:
        for result in results:
            if isinstance(result, ProtocolError):
                logger.warning("control plane broke the protocol: %s", result)
                await connection.close(CloseCode.PROTOCOL_ERROR, str(result)[:120])
            elif isinstance(result, Exception) and not isinstance(
                result, ConnectionClosed
            ):
                logger.error("sync session failed", exc_info=result)
                await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
        await connection.close()
        close = connection.protocol.close_rcvd
        if close is not None and close.code == CloseCode.POLICY_VIOLATION:
            self._last_error = f"refused by the control plane: {close.reason}"
            logger.warning("refused by the control plane: %s", close.reason)
        else:
            reason = f" ({close.code}: {close.reason})" if close else ""
            self._last_error = f"control plane connection lost{reason}"
            logger.warning("control plane connection lost%s", reason)

    async def _read(self, connection: ClientConnection, inbox: _Latest) -> None:
        async for frame in connection:
            message = decode(frame, max_size=self._max_frame_size)
            if not isinstance(message, ConfigMessage):
                raise ProtocolError(f"unexpected {message.TYPE} message")
            logger.debug("received config version %d", message.version)
            inbox.put(message)

    async def _apply_each(self, connection: ClientConnection, inbox: _Latest) -> None:
        while True:
            message = await inbox.take()
            reply = await self._apply_one(message)
            await connection.send(reply.serialize())

    async def _apply_one(self, message: ConfigMessage) -> Applied | ApplyError:
        """Apply one config message; return what to tell the control plane."""
        current = self._current()
        if current is not None and (current.version, current.hash) == (
            message.version,
            message.hash,
        ):
            return Applied(message.version, message.hash, time.time())

        try:
            if len(message.payload) > _THREAD_PAYLOAD:
                snapshot = await asyncio.to_thread(message.to_snapshot)
            else:
                snapshot = message.to_snapshot()
        except ProtocolError as exc:
            logger.warning("config version %d is corrupt: %s", message.version, exc)
            return ApplyError(message.version, message.hash, "decode", str(exc)[:1024])

        try:
            await self._apply(snapshot)
        except PorticoError as exc:
            logger.warning("cannot apply config version %d: %s", message.version, exc)
            return ApplyError(message.version, message.hash, "compile", str(exc)[:1024])
        except Exception as exc:
            logger.error(
                "applying config version %d failed", message.version, exc_info=True
            )
            reason = f"{type(exc).__name__}: {exc}"[:1024]
            return ApplyError(message.version, message.hash, "internal", reason)
        logger.debug("applied config version %d (%s)", message.version, message.hash)
        return Applied(message.version, message.hash, time.time())

    # Telemetry.

    async def _report(self) -> None:
        endpoint = self._settings.cluster_telemetry_endpoint
        assert endpoint is not None, "started only with a telemetry endpoint"
        uri = endpoint_uri(endpoint, "/v1/telemetry")
        delays: Generator[float] | None = None
        async for connection in connect(
            uri,
            ssl=self._ssl,
            compression=None,
            ping_interval=self._ping[0],
            ping_timeout=self._ping[1],
            reconnect_delays=lambda: backoff(*self._backoff),
            process_exception=_retryable,
            proxy=None,
        ):
            started = time.monotonic()
            try:
                while True:
                    counters = dict(self._counters()) if self._counters else {}
                    report = Telemetry(self._node_id, counters, time.time())
                    await connection.send(report.serialize())
                    await asyncio.sleep(self._telemetry_interval)
            except ConnectionClosed as exc:
                logger.debug("telemetry connection closed: %s", exc)
            # As for sync: a refusing endpoint is retried ever more slowly.
            if time.monotonic() - started < STABLE_CONNECTION:
                delays = delays or backoff(*self._backoff)
                await asyncio.sleep(next(delays))
            else:
                delays = None


class _Latest:
    """Hold the newest config message not yet applied; older ones are dropped."""

    def __init__(self) -> None:
        self._message: ConfigMessage | None = None
        self._ready = asyncio.Event()

    def put(self, message: ConfigMessage) -> None:
        self._message = message
        self._ready.set()

    async def take(self) -> ConfigMessage:
        await self._ready.wait()
        self._ready.clear()
        message = self._message
        assert message is not None, "the event is set only with a message"
        self._message = None
        return message
