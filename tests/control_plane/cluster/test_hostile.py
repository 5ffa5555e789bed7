"""Hostile input on the cluster port closes that connection, and only that one.

Each test keeps a well-behaved node (the real sync agent) connected beside
the misbehaving raw client, and checks that it still receives new versions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import (
    ClientPair,
    Cluster,
    MemoryStore,
    Node,
    deadline,
    running_cluster,
    snapshot,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from control_plane.hub import SnapshotHub
from shared.messages import Applied, ApplyError, ConfigMessage, Hello, decode
from shared.snapshot import Snapshot, build_config, make_snapshot

NODE = "7b1d9c0e-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def _hello(**changes: Any) -> Hello:
    fields: dict[str, Any] = {
        "node_id": NODE,
        "hostname": "raw-node",
        "portico_version": "0.1.0",
        "plugins": ("basic-auth",),
        "config_version": None,
        "config_hash": None,
        "labels": {},
    }
    fields.update(changes)
    return Hello(**fields)


def _raw(cluster: Cluster, pair: ClientPair, **options: Any) -> connect:
    return connect(
        cluster.url("g1").replace("https", "wss") + "/v1/outlet",
        ssl=pair.context(cluster.ca),
        proxy=None,
        open_timeout=deadline(5),
        max_size=None,
        **options,
    )


async def _config(connection: ClientConnection) -> ConfigMessage:
    async with asyncio.timeout(deadline(5)):
        message = decode(await connection.recv(), max_size=1 << 30)
    assert isinstance(message, ConfigMessage)
    return message


async def _closed(connection: ClientConnection) -> ConnectionClosed:
    """Return how the listener closed the connection, skipping config frames."""
    async with asyncio.timeout(deadline(5)):
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await connection.recv()
    return closed.value


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def _warned(caplog: pytest.LogCaptureFixture, *parts: str) -> None:
    """Wait until a warning holding every one of `parts` is logged."""
    async with asyncio.timeout(deadline(5)):
        while not any(all(p in w for p in parts) for w in _warnings(caplog)):
            await asyncio.sleep(0.01)


async def _still_served(cluster: Cluster, good: Node, version: int) -> None:
    """Publish `version` and wait for the well-behaved node to apply it."""
    cluster.hub.publish(snapshot("g1", version))
    await good.changes.until(lambda: version in good.versions)


@pytest.fixture
async def small(
    tmp_path: Path, store: MemoryStore, pairs: dict[str, ClientPair]
) -> AsyncIterator[Cluster]:
    """A listener taking frames of 64 KiB at most, with short timeouts."""
    async with running_cluster(
        tmp_path,
        store,
        SnapshotHub(),
        max_frame_size=64 * 1024,
        answer_timeout=0.5,
    ) as cluster:
        yield cluster


@pytest.fixture
async def good(small: Cluster, pairs: dict[str, ClientPair]) -> Node:
    small.hub.publish(snapshot("g1", 1))
    node = small.start_node("g1", pairs["g1"], node_id="good-node")
    await node.changes.until(lambda: node.versions == [1])
    return node


async def test_an_oversized_frame_closes_its_connection_with_a_warning(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await _config(connection)
        await connection.send(b"x" * (65 * 1024))
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1009
    await _warned(caplog, f"closed node {NODE}", "1009")
    await _still_served(small, good, 2)


async def test_an_oversized_hello_closes_with_a_warning_naming_the_peer(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(b"{" + b" " * (65 * 1024) + b"}")
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1009
    await _warned(caplog, "before its hello", "1009")
    await _still_served(small, good, 2)


async def test_a_malformed_hello_closes_with_its_reason(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        frame = _hello().serialize().replace(b'"hostname"', b'"hostnames"')
        await connection.send(frame)
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002
    assert "unknown fields ['hostnames']" in closed.rcvd.reason
    await _warned(caplog, "sent a bad hello")
    await _still_served(small, good, 2)


async def test_an_unknown_message_type_closes_with_a_protocol_error(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await _config(connection)
        await connection.send(b'{"v":1,"type":"reboot"}')
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002
    assert closed.rcvd.reason == "unknown message type 'reboot'"
    await _warned(caplog, f"node {NODE} broke the protocol")
    await _still_served(small, good, 2)


async def test_a_replayed_answer_closes_with_a_protocol_error(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        config = await _config(connection)
        answer = Applied(config.version, config.hash, 1.0).serialize()
        await connection.send(answer)
        await connection.send(answer)
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002
    assert closed.rcvd.reason == "applied for version 1, which was not pushed"
    await _warned(caplog, f"node {NODE} broke the protocol")
    await _still_served(small, good, 2)


async def test_an_answer_for_another_version_closes_with_a_protocol_error(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        config = await _config(connection)
        await connection.send(ApplyError(7, config.hash, "compile", "no").serialize())
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002
    assert closed.rcvd.reason == "error for version 7 while version 1 awaits an answer"
    await _still_served(small, good, 2)


async def test_an_answer_with_another_hash_closes_with_a_protocol_error(
    small: Cluster, good: Node, pairs: dict[str, ClientPair]
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        config = await _config(connection)
        await connection.send(Applied(config.version, "f" * 32, 1.0).serialize())
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002
    await _still_served(small, good, 2)


async def test_a_node_that_never_answers_is_closed_after_the_answer_timeout(
    small: Cluster,
    good: Node,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _raw(small, pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await _config(connection)
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert closed.rcvd.reason == "no answer to config version 1 in time"
    await _warned(caplog, f"closing node {NODE}: no answer")
    await _still_served(small, good, 2)


def _bulky(version: int, megabytes: int) -> Snapshot:
    """Return a snapshot whose config frame is about `megabytes` MiB."""
    # Random tags do not compress: the frame is as large as they are.
    tags = [os.urandom(512).hex() for _ in range(megabytes * 1024)]
    service = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": f"bulky-{version}",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 8080,
        "enabled": True,
        "tags": tags,
    }
    return make_snapshot("g1", version, build_config({"services": [service]}))


async def test_a_node_too_slow_to_receive_is_closed_by_the_keepalive(
    tmp_path: Path,
    store: MemoryStore,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = SnapshotHub()
    async with running_cluster(
        tmp_path, store, hub, ping_interval=0.5, ping_timeout=0.5
    ) as cluster:
        hub.publish(snapshot("g1", 1))
        good = cluster.start_node("g1", pairs["g1"], node_id="good-node")
        await good.changes.until(lambda: good.versions == [1])

        # A client that reads nothing, through a small receive window: the
        # keepalive ping waits behind the config and is never answered.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(cluster.listener.address)
        async with _raw(cluster, pairs["g1"], sock=sock) as connection:
            await connection.send(
                _hello(config_version=1, config_hash=snapshot("g1", 1).hash).serialize()
            )
            connection.transport.pause_reading()
            hub.publish(_bulky(2, 8))
            await store.changes.until(
                lambda: (store.node("g1", NODE) or {}).get("connected") is False,
                seconds=15,
            )
            connection.transport.abort()
        await _warned(caplog, f"closed node {NODE}: keepalive ping timeout")
        await good.changes.until(lambda: 2 in good.versions, seconds=15)


async def test_a_config_over_the_maximum_payload_is_not_pushed(
    small: Cluster, good: Node, caplog: pytest.LogCaptureFixture
) -> None:
    small.hub.publish(_bulky(2, 1))

    def refused() -> bool:
        row = small.store.node("g1", "good-node") or {}
        return "exceeds the cluster's maximum payload" in (row.get("error") or "")

    await small.store.changes.until(refused)
    assert good.versions == [1]
    await _warned(caplog, "not pushing version 2")

    # A later version that fits is pushed, and clears the error.
    await _still_served(small, good, 3)
    await small.store.changes.until(
        lambda: (small.store.node("g1", "good-node") or {}).get("error") is None
    )


async def test_unpinning_disconnects_the_node_at_the_next_refresh(
    tmp_path: Path, store: MemoryStore, pairs: dict[str, ClientPair]
) -> None:
    # No polling: only the refresh the admin API asks for after an unpin.
    hub = SnapshotHub()
    async with running_cluster(
        tmp_path, store, hub, recheck_interval=3600, cert_refresh_interval=3600
    ) as cluster:
        hub.publish(snapshot("g1", 1))
        async with _raw(cluster, pairs["g1"]) as connection:
            await connection.send(_hello().serialize())
            config = await _config(connection)
            await connection.send(Applied(1, config.hash, 1.0).serialize())
            store.certificates["g1"] = []
            await cluster.listener.refresh_certificates()
            closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "no longer pinned" in closed.rcvd.reason


async def test_unpinning_disconnects_the_node_at_the_next_poll(
    tmp_path: Path, store: MemoryStore, pairs: dict[str, ClientPair]
) -> None:
    hub = SnapshotHub()
    async with running_cluster(
        tmp_path, store, hub, recheck_interval=3600, cert_refresh_interval=0.1
    ) as cluster:
        hub.publish(snapshot("g1", 1))
        async with _raw(cluster, pairs["g1"]) as connection:
            await connection.send(_hello().serialize())
            config = await _config(connection)
            await connection.send(Applied(1, config.hash, 1.0).serialize())
            store.certificates["g1"] = []
            closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
