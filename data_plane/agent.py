"""Keep a data plane node's config in step with its control plane.

The agent dials the runtime group's ``control_plane_endpoint`` over WebSocket
with the node's client certificate, says hello, and applies every config the
control plane pushes, newest first: frames that arrive while one is being
applied replace each other, so only the latest is applied next. Each apply
is answered with an applied or an error frame.

The control plane may send a delta instead: the changes from the version the
node serves. Applied to that config it must give the control plane's hash;
when it does not fit, the agent answers resync and is sent the full config.
A config of another runtime group than the endpoint's is refused.

When the control plane is away the node keeps serving the config it has and
the agent reconnects with jittered exponential backoff (0.5 s up to 30 s).

Without ``--cluster-ca-cert`` the agent cannot verify the control plane and
accepts whatever certificate it presents; it says so once, as a warning.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
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
from data_plane.router import prepare
from data_plane.runtime.deltas import patched_aside
from data_plane.runtime.switch import ASIDE_FRAME, aside
from data_plane.settings import Settings
from shared import __version__ as PORTICO_VERSION
from shared.errors import PorticoError, ProtocolError, ValidationError
from shared.messages import (
    DELTA,
    MAX_FRAME_SIZE,
    Applied,
    ApplyError,
    ConfigMessage,
    DeltaMessage,
    Hello,
    Resync,
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
# The path of a group's control_plane_endpoint, as the listener serves it.
_GROUP_PATH = re.compile(r"/cp/([A-Za-z0-9._-]{1,128})/?$")


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


def group_of_endpoint(endpoint: str) -> str:
    """Return the runtime group id an endpoint URL ends with (``/cp/<id>``)."""
    match = _GROUP_PATH.search(urlsplit(endpoint).path)
    if match is None:
        raise ValidationError(
            f"expected an endpoint ending in /cp/<runtime group id>, got {endpoint!r}"
        )
    return match.group(1)


def _retryable(exc: Exception) -> Exception | None:
    # Every failure to connect may heal: the control plane restarts, the
    # certificate gets pinned, the group gets created. Only bugs are fatal.
    if isinstance(exc, OSError | TimeoutError | InvalidHandshake | InvalidStatus):
        return None
    return exc


def client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Return the TLS context that dials the control plane; ValidationError if bad."""
    if settings.cluster_cert is None or settings.cluster_cert_key is None:
        raise ValidationError(
            "--cluster-cert and --cluster-cert-key are required with "
            "--cluster-control-plane"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.cluster_cert, settings.cluster_cert_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(
            f"--cluster-cert {settings.cluster_cert} and --cluster-cert-key "
            f"{settings.cluster_cert_key}: not a PEM certificate and its private "
            f"key ({exc})"
        ) from None
    if settings.cluster_ca_cert is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        context.load_verify_locations(settings.cluster_ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(
            f"--cluster-ca-cert {settings.cluster_ca_cert}: not a PEM certificate "
            f"({exc})"
        ) from None
    # The control plane's generated certificate is a self-signed leaf.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


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
        telemetry_interval: float | None = None,
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
        self._telemetry_interval = (
            settings.cluster_telemetry_interval
            if telemetry_interval is None
            else telemetry_interval
        )
        self._max_frame_size = max_frame_size

        # A hello the control plane would refuse is better refused at start.
        try:
            self._hello(None).check()
        except ProtocolError as exc:
            raise ValidationError(f"cannot introduce this node: {exc}") from None
        self._uri = endpoint_uri(settings.cluster_control_plane, "/v1/outlet")
        # The only group whose configs this node accepts.
        self.group_id = group_of_endpoint(settings.cluster_control_plane)
        self._ssl = client_ssl_context(settings)
        if settings.cluster_ca_cert is None:
            logger.warning(
                "no --cluster-ca-cert given: the control plane's certificate "
                "is not verified"
            )
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
            # A peer that stopped answering pings will not answer a close
            # either; waiting longer for it only delays the reconnection.
            close_timeout=self._ping[1],
            reconnect_delays=lambda: backoff(*self._backoff),
            process_exception=self._note_failure,
            proxy=None,
        ):
            started = time.monotonic()
            await self._session(connection)
            # connect() resets its backoff once a handshake succeeds. Wait all
            # the same, jittered, so that nodes that lost the same control
            # plane do not dial back in lockstep; and keep backing off while
            # sessions end early.
            if time.monotonic() - started >= STABLE_CONNECTION:
                delays = None
            delays = delays or backoff(*self._backoff)
            await asyncio.sleep(next(delays))

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
            capabilities=(DELTA,),
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
        # Within one connection the control plane only moves forward; an
        # older version is a replay, whoever sent it.
        newest = -1
        async for frame in connection:
            message = decode(frame, max_size=self._max_frame_size)
            if not isinstance(message, ConfigMessage | DeltaMessage):
                raise ProtocolError(f"unexpected {message.TYPE} message")
            if message.version < newest:
                raise ProtocolError(
                    f"config version {message.version} after version {newest}"
                )
            newest = message.version
            logger.debug("received %s version %d", message.TYPE, message.version)
            inbox.put(message)

    async def _apply_each(self, connection: ClientConnection, inbox: _Latest) -> None:
        while True:
            message = await inbox.take()
            reply = await self._apply_one(message)
            await connection.send(reply.serialize())

    async def _apply_one(
        self, message: ConfigMessage | DeltaMessage
    ) -> Applied | ApplyError | Resync:
        """Apply one config or delta; return what to tell the control plane."""
        if message.group_id != self.group_id:
            logger.warning(
                "refusing config version %d of runtime group %s: this node "
                "belongs to runtime group %s",
                message.version,
                message.group_id,
                self.group_id,
            )
            reason = f"config of runtime group {message.group_id}, not {self.group_id}"
            return ApplyError(message.version, message.hash, "group", reason)

        current = self._current()
        if current is not None and (current.version, current.hash) == (
            message.version,
            message.hash,
        ):
            return Applied(message.version, message.hash, time.time())

        if isinstance(message, DeltaMessage):
            patched = await self._patch(message, current)
            if isinstance(patched, Resync):
                return patched
            snapshot = patched
        else:
            try:
                if len(message.payload) > ASIDE_FRAME:
                    snapshot = await aside(_decoded, message)
                else:
                    snapshot = message.to_snapshot()
            except ProtocolError as exc:
                logger.warning("config version %d is corrupt: %s", message.version, exc)
                reason = str(exc)[:1024]
                return ApplyError(message.version, message.hash, "decode", reason)

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

    async def _patch(
        self, message: DeltaMessage, current: Snapshot | None
    ) -> Snapshot | Resync:
        """Apply a delta to the config being served; Resync if it does not fit.

        The result must hash like the control plane's config; otherwise the
        node asks for the full config rather than serve a guess.
        """
        if current is None or (current.version, current.hash) != (
            message.base_version,
            message.base_hash,
        ):
            running = "no config" if current is None else f"version {current.version}"
            reason = (
                f"delta from version {message.base_version} cannot apply to {running}"
            )
            return self._resync(message, reason)

        try:
            return await patched_aside(current, message)
        except ProtocolError as exc:
            return self._resync(message, str(exc))

    def _resync(self, message: DeltaMessage, reason: str) -> Resync:
        logger.warning(
            "cannot apply the delta to version %d: %s; asking for the full config",
            message.version,
            reason,
        )
        return Resync(message.version, message.hash, reason[:1024])

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
    """Hold the newest config message not yet applied; older ones are dropped.

    A delta that replaces an unapplied message no longer fits the config
    being served: the node then asks for the full config.
    """

    def __init__(self) -> None:
        self._message: ConfigMessage | DeltaMessage | None = None
        self._ready = asyncio.Event()

    def put(self, message: ConfigMessage | DeltaMessage) -> None:
        self._message = message
        self._ready.set()

    async def take(self) -> ConfigMessage | DeltaMessage:
        await self._ready.wait()
        self._ready.clear()
        message = self._message
        assert message is not None, "the event is set only with a message"
        self._message = None
        return message


def _decoded(message: ConfigMessage) -> Snapshot:
    """Decode a large config off the event loop, its routes filed ahead."""
    snapshot = message.to_snapshot()
    prepare(snapshot.config.get("routes") or (), whole=True)
    return snapshot
