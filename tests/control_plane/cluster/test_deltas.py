"""Nodes behind get deltas from the change log; a resync gets the full config."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from cluster_harness import ClientPair, Cluster, deadline, snapshot
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.delta import apply_delta
from shared.messages import (
    Applied,
    ConfigMessage,
    DeltaMessage,
    Hello,
    Message,
    Resync,
    decode,
)
from shared.snapshot import Snapshot, build_config, make_snapshot

NODE = "5e2a7c1d-3b4f-4a6e-9d8c-7b6a5f4e3d2c"


def _versions(first: int, last: int, services: int = 20) -> list[Snapshot]:
    """Return versions of g1 where each one renames one more service."""
    result = []
    for version in range(first, last + 1):
        entities = [
            {
                "id": f"00000000-0000-4000-8000-{i:012d}",
                "name": f"svc-{i}-{'new' if i < version else 'old'}",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": 8080,
                "enabled": True,
            }
            for i in range(services)
        ]
        config = build_config({"services": entities})
        result.append(make_snapshot("g1", version, config))
    return result


def _hello(base: Snapshot | None, delta: bool = True) -> Hello:
    return Hello(
        node_id=NODE,
        hostname="raw-node",
        portico_version="0.1.0",
        plugins=("basic-auth",),
        config_version=None if base is None else base.version,
        config_hash=None if base is None else base.hash,
        labels={},
        capabilities=("delta",) if delta else (),
    )


def _raw(cluster: Cluster, pair: ClientPair) -> connect:
    return connect(
        cluster.url("g1").replace("https", "wss") + "/v1/outlet",
        ssl=pair.context(cluster.ca),
        proxy=None,
        open_timeout=deadline(5),
    )


async def _receive(connection: ClientConnection) -> Message:
    async with asyncio.timeout(deadline(5)):
        return decode(await connection.recv())


def _publish(cluster: Cluster, versions: list[Snapshot]) -> None:
    for version in versions:
        cluster.hub.publish(version)


async def test_a_node_behind_gets_a_delta_that_gives_the_current_config(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    versions = _versions(1, 4)
    _publish(cluster, versions)
    async with _raw(cluster, pairs["g1"]) as connection:
        await connection.send(_hello(versions[0]).serialize())
        message = await _receive(connection)
        assert isinstance(message, DeltaMessage)
        assert (message.base_version, message.base_hash) == (1, versions[0].hash)
        assert (message.version, message.hash) == (4, versions[-1].hash)
        config = apply_delta(versions[0].config, message.to_delta())
        assert config == versions[-1].config

        # The next version builds on the one just applied.
        await connection.send(Applied(4, message.hash, 1.0).serialize())
        (newer,) = _versions(5, 5)
        cluster.hub.publish(newer)
        message = await _receive(connection)
        assert isinstance(message, DeltaMessage)
        assert (message.base_version, message.version) == (4, 5)


async def test_a_node_without_the_capability_gets_the_full_config(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    versions = _versions(1, 3)
    _publish(cluster, versions)
    async with _raw(cluster, pairs["g1"]) as connection:
        await connection.send(_hello(versions[0], delta=False).serialize())
        message = await _receive(connection)
    assert isinstance(message, ConfigMessage) and message.version == 3


async def test_a_node_further_behind_than_the_log_gets_the_full_config(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    versions = _versions(2, 3)
    _publish(cluster, versions)
    (unknown,) = _versions(1, 1)
    async with _raw(cluster, pairs["g1"]) as connection:
        await connection.send(_hello(unknown).serialize())
        message = await _receive(connection)
    assert isinstance(message, ConfigMessage) and message.version == 3


async def test_a_resync_answer_gets_the_full_config(
    cluster: Cluster, pairs: dict[str, ClientPair], caplog: pytest.LogCaptureFixture
) -> None:
    versions = _versions(1, 3)
    _publish(cluster, versions)
    async with _raw(cluster, pairs["g1"]) as connection:
        await connection.send(_hello(versions[0]).serialize())
        delta = await _receive(connection)
        assert isinstance(delta, DeltaMessage)
        with caplog.at_level(logging.INFO, logger="control_plane.cluster.session"):
            await connection.send(Resync(3, delta.hash, "it did not fit").serialize())
            message = await _receive(connection)
        assert isinstance(message, ConfigMessage)
        assert (message.version, message.hash) == (3, versions[-1].hash)
        await connection.send(Applied(3, message.hash, 1.0).serialize())
    assert any("it did not fit" in r.getMessage() for r in caplog.records)


async def test_a_resync_answer_to_a_full_config_is_a_protocol_error(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, pairs["g1"]) as connection:
        await connection.send(_hello(None).serialize())
        message = await _receive(connection)
        assert isinstance(message, ConfigMessage)
        await connection.send(Resync(1, message.hash, "again").serialize())
        async with asyncio.timeout(deadline(5)):
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002


async def test_a_syncing_agent_follows_deltas_to_the_newest_version(
    cluster: Cluster,
    pairs: dict[str, ClientPair],
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = _versions(1, 8)
    cluster.hub.publish(versions[0])
    with caplog.at_level(logging.DEBUG, logger="control_plane.cluster.session"):
        node = cluster.start_node("g1", pairs["g1"], initial=versions[0])
        await _connected(cluster)
        for version in versions[1:]:
            cluster.hub.publish(version)
            await node.changes.until(lambda v=version: node.current() == v)

    assert node.current() == versions[-1]
    pushes = [
        r.getMessage() for r in caplog.records if "pushed version" in r.getMessage()
    ]
    assert pushes and all("(delta," in push for push in pushes), pushes


async def _connected(cluster: Cluster) -> None:
    def connected() -> Any:
        return (cluster.store.node("g1", "node-1") or {}).get("connected")

    await cluster.store.changes.until(connected)
