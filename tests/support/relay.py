"""A TCP relay between a data plane node and its control plane that tests break.

:class:`TcpRelay` listens on a free port and forwards every connection to a
target address. A test can :meth:`~TcpRelay.partition` the link (bytes stop
flowing both ways and new connections hang, as when the network drops
packets), :meth:`~TcpRelay.heal` it, or :meth:`~TcpRelay.cut` every open
connection. It records when each connection was accepted, so that a test can
check how often a client dials.

:func:`start_relay` runs one in a thread of its own, for tests that drive
processes synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class TcpRelay:
    """Forward connections from a local port to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepted: list[float] = []
        self._open = asyncio.Event()
        self._open.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """Return the port the relay listens on."""
        assert self._server is not None, "relay not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:`port` (a free one by default)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def partition(self) -> None:
        """Stop forwarding: bytes wait in the relay, new connections hang."""
        self._open.clear()

    def heal(self) -> None:
        """Forward again, including what waited during the partition."""
        self._open.set()

    def cut(self) -> None:
        """Reset every open connection now."""
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.accepted.append(time.monotonic())
        task = asyncio.current_task()
        assert task is not None, "called by asyncio.start_server"
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._open.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                # The target is down: the client sees its connection reset,
                # as if it had dialled the target itself.
                _reset(writer)
                return
            self._writers.add(up_writer)
            pipes = {
                asyncio.create_task(self._pipe(reader, up_writer)),
                asyncio.create_task(self._pipe(up_reader, writer)),
            }
            try:
                # An end of file in one direction lets the other run on; a
                # reset in either ends both.
                await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                _reset(up_writer)
                self._writers.discard(up_writer)
        finally:
            _reset(writer)
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await self._open.wait()
            data = await reader.read(65536)
            if not data:
                break
            await self._open.wait()
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # A zero linger time makes close() send a reset, not a graceful FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
    writer.transport.abort()


class ThreadedRelay:
    """A :class:`TcpRelay` running in an event loop on a thread of its own."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.relay = TcpRelay(target_host, target_port)
        self._call(self.relay.start())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _do(self, action: str) -> None:
        async def run() -> None:
            getattr(self.relay, action)()

        self._call(run())

    @property
    def port(self) -> int:
        return self.relay.port

    def partition(self) -> None:
        self._do("partition")

    def heal(self) -> None:
        self._do("heal")

    def cut(self) -> None:
        self._do("cut")

    def close(self) -> None:
        self._call(self.relay.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def start_relay(target_host: str, target_port: int) -> Iterator[ThreadedRelay]:
    """Run a relay to the target in a thread until the block ends."""
    relay = ThreadedRelay(target_host, target_port)
    try:
        yield relay
    finally:
        relay.close()
