"""The cluster listener pushes configs to pinned nodes, and only to them."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from cluster_harness import (
    ClientPair,
    Cluster,
    MemoryStore,
    cluster_settings,
    deadline,
    snapshot,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from control_plane.cluster.listener import ClusterListener
from control_plane.hub import SnapshotHub
from control_plane.settings import Listen
from shared.messages import Applied, ConfigMessage, Hello, decode

NODE = "3f6e2a52-0f1e-4a57-9d55-8b0d4a1c2e01"


def _hello(
    version: int | None = None, hash_: str | None = None, **changes: object
) -> Hello:
    fields: dict[str, object] = {
        "node_id": NODE,
        "hostname": "raw-node",
        "portico_version": "0.1.0",
        "plugins": ("basic-auth",),
        "config_version": version,
        "config_hash": hash_,
        "labels": {},
    }
    fields.update(changes)
    return Hello(**fields)  # type: ignore[arg-type]


def _raw(cluster: Cluster, group_id: str, pair: ClientPair) -> connect:
    return connect(
        cluster.url(group_id).replace("https", "wss") + "/v1/outlet",
        ssl=pair.context(cluster.ca),
        proxy=None,
        open_timeout=deadline(5),
    )


async def _next_config(connection: ClientConnection) -> ConfigMessage:
    async with asyncio.timeout(deadline(5)):
        message = decode(await connection.recv())
    assert isinstance(message, ConfigMessage)
    return message


async def _closed(connection: ClientConnection) -> ConnectionClosed:
    """Return how the listener closed the connection; fail on any frame."""
    async with asyncio.timeout(deadline(5)):
        with pytest.raises(ConnectionClosed) as closed:
            frame = await connection.recv()
            pytest.fail(f"the listener sent a frame: {frame!r:.80}")
    return closed.value


async def test_config_is_pushed_when_a_snapshot_is_published(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    node = cluster.start_node("g1", pairs["g1"])
    cluster.hub.publish(snapshot("g1", 1))
    await node.changes.until(lambda: node.versions == [1])
    assert node.applied[0] == snapshot("g1", 1)


async def test_node_row_records_applied_version_and_lag(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.start_node("g1", pairs["g1"], node_id="node-a")
    cluster.hub.publish(snapshot("g1", 4))

    def in_sync() -> bool:
        row = cluster.store.node("g1", "node-a")
        return (
            row is not None
            and row["sync_state"] == "in_sync"
            and (row["config_version"] == 4)
        )

    await cluster.store.changes.until(in_sync)
    row = cluster.store.node("g1", "node-a")
    assert row is not None
    assert row["connected"] is True
    assert row["config_hash"] == snapshot("g1", 4).hash
    assert row["lag_ms"] is not None and row["lag_ms"] >= 0
    assert row["compatibility_status"]["state"] == (
        "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
    )


async def test_a_burst_of_versions_ends_on_the_newest_and_never_goes_back(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    node = cluster.start_node("g1", pairs["g1"])
    cluster.hub.publish(snapshot("g1", 1))
    await node.changes.until(lambda: node.versions == [1])

    for version in range(2, 52):
        cluster.hub.publish(snapshot("g1", version))
        await asyncio.sleep(0)  # let the writer run mid-burst
    await node.changes.until(lambda: node.versions[-1] == 51)

    assert node.versions == sorted(set(node.versions))
    assert len(node.versions) <= 51


async def test_a_node_already_on_the_current_version_is_sent_nothing(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    current = snapshot("g1", 5)
    cluster.hub.publish(current)
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello(5, current.hash).serialize())
        await cluster.store.changes.until(
            lambda: cluster.store.node("g1", NODE) is not None
        )
        cluster.hub.publish(snapshot("g1", 6))
        first = await _next_config(connection)
    assert first.version == 6


async def test_a_node_with_the_same_version_but_other_content_gets_the_config(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 5))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello(5, "f" * 32).serialize())
        first = await _next_config(connection)
    assert (first.version, first.hash) == (5, snapshot("g1", 5).hash)


async def test_nodes_of_a_group_get_the_same_frame_bytes(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 2, services=300))
    async with (
        _raw(cluster, "g1", pairs["g1"]) as one,
        _raw(cluster, "g1", pairs["g1"]) as two,
    ):
        await one.send(_hello(node_id="node-one").serialize())
        await two.send(_hello(node_id="node-two").serialize())
        async with asyncio.timeout(deadline(5)):
            frames = [await one.recv(), await two.recv()]
    assert frames[0] == frames[1]


async def test_a_certificate_pinned_to_another_group_is_refused_with_nothing_sent(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, "g1", pairs["g2"]) as connection:
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "not pinned" in closed.rcvd.reason
    assert cluster.store.node("g1", NODE) is None


async def test_a_certificate_pinned_nowhere_fails_the_tls_handshake(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    with pytest.raises((OSError, InvalidHandshake)):
        async with _raw(cluster, "g1", pairs["nowhere"]) as connection:
            await connection.send(_hello().serialize())
            await connection.recv()


async def test_a_newly_pinned_certificate_is_accepted_after_a_refresh(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.store.pin("g2", pairs["nowhere"].cert_pem)
    await cluster.listener.refresh_certificates()
    cluster.hub.publish(snapshot("g2", 1))
    async with _raw(cluster, "g2", pairs["nowhere"]) as connection:
        await connection.send(_hello().serialize())
        assert (await _next_config(connection)).version == 1


async def test_a_node_whose_certificate_is_unpinned_is_disconnected(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await _next_config(connection)
        cluster.store.certificates["g1"] = []
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "no longer pinned" in closed.rcvd.reason


async def test_a_member_of_a_composite_is_refused(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.store.members["c1"] = {"g1"}
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "member of composite runtime group c1" in closed.rcvd.reason


async def test_an_unknown_path_is_answered_404(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    host, port = cluster.listener.address
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"wss://{host}:{port}/v1/outlet",
            ssl=pairs["g1"].context(cluster.ca),
            proxy=None,
        ):
            pass
    assert refused.value.response.status_code == 404


async def test_a_held_composite_pushes_nothing_until_released(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    node = cluster.start_node("c1", pairs["c1"], node_id="node-c")
    cluster.hub.publish(snapshot("c1", 1))
    await node.changes.until(lambda: node.versions == [1])

    cluster.hub.hold("c1", True)
    cluster.hub.publish(snapshot("c1", 2))

    def held() -> bool:
        row = cluster.store.node("c1", "node-c")
        return row is not None and row["sync_state"] == "held_by_conflict"

    await cluster.store.changes.until(held)
    assert node.versions == [1]

    cluster.hub.hold("c1", False)
    await node.changes.until(lambda: node.versions == [1, 2])


async def test_an_apply_error_is_recorded_on_the_node(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    node = cluster.start_node("g1", pairs["g1"], node_id="node-e")
    node.fail_versions.add(2)
    cluster.hub.publish(snapshot("g1", 1))
    await node.changes.until(lambda: node.versions == [1])
    cluster.hub.publish(snapshot("g1", 2))

    def failed() -> bool:
        row = cluster.store.node("g1", "node-e")
        return row is not None and row["sync_state"] == "apply_failed"

    await cluster.store.changes.until(failed)
    row = cluster.store.node("g1", "node-e")
    assert row is not None
    assert "cannot compile version 2" in row["error"]
    assert row["config_version"] == 1
    assert node.versions == [1]


async def test_a_later_version_that_applies_clears_the_error(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    node = cluster.start_node("g1", pairs["g1"], node_id="node-e")
    node.fail_versions.add(1)
    cluster.hub.publish(snapshot("g1", 1))
    await cluster.store.changes.until(
        lambda: (cluster.store.node("g1", "node-e") or {}).get("error") is not None
    )
    cluster.hub.publish(snapshot("g1", 2))
    await cluster.store.changes.until(
        lambda: (
            (cluster.store.node("g1", "node-e") or {}).get("sync_state") == "in_sync"
        )
    )
    assert node.versions == [2]


async def test_a_node_of_a_newer_minor_version_is_refused_as_incompatible(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello(portico_version="0.9.0").serialize())
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    row = cluster.store.node("g1", NODE)
    assert row is not None
    assert row["sync_state"] == "incompatible"
    assert row["connected"] is False
    assert row["compatibility_status"]["state"] == "COMPATIBILITY_STATE_INCOMPATIBLE"


async def test_a_config_using_a_plugin_the_node_lacks_is_not_pushed(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    base = snapshot("g1", 1)
    config = dict(base.config)
    config["plugins"] = [{"id": "p1", "name": "rate-limiting", "enabled": True}]
    from shared.snapshot import make_snapshot

    cluster.hub.publish(make_snapshot("g1", 1, config))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello().serialize())

        def incompatible() -> bool:
            row = cluster.store.node("g1", NODE)
            return row is not None and row["sync_state"] == "incompatible"

        await cluster.store.changes.until(incompatible)
        cluster.hub.publish(snapshot("g1", 2))
        first = await _next_config(connection)
    assert first.version == 2
    row = cluster.store.node("g1", NODE)
    assert row is not None
    issue = row["compatibility_status"]["issues"]
    assert issue == [] or issue[0]["code"] == "plugin_set_incompatible"


async def test_a_node_that_leaves_is_marked_disconnected(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.hub.publish(snapshot("g1", 1))
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await _next_config(connection)
        await connection.send(Applied(1, snapshot("g1", 1).hash, 1.0).serialize())
        await cluster.store.changes.until(
            lambda: (
                (cluster.store.node("g1", NODE) or {}).get("sync_state") == "in_sync"
            )
        )
    await cluster.store.changes.until(
        lambda: (cluster.store.node("g1", NODE) or {}).get("connected") is False
    )


async def test_a_first_frame_other_than_hello_is_a_protocol_error(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(Applied(1, "a" * 32, 1.0).serialize())
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002


async def test_garbage_after_hello_closes_with_a_protocol_error(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    async with _raw(cluster, "g1", pairs["g1"]) as connection:
        await connection.send(_hello().serialize())
        await connection.send(b"\x00 not a frame")
        closed = await _closed(connection)
    assert closed.rcvd is not None and closed.rcvd.code == 1002


async def test_an_unreadable_server_certificate_fails_the_start(
    tmp_path: Path, store: MemoryStore
) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate")
    (tmp_path / "bad.key").write_text("not a key")
    settings = dataclasses.replace(
        cluster_settings(tmp_path),
        cluster_cert=tmp_path / "bad.crt",
        cluster_cert_key=tmp_path / "bad.key",
    )
    listener = ClusterListener(store=store, hub=SnapshotHub(), settings=settings)
    with pytest.raises(OSError, match="cannot load the server certificate"):
        await listener.start()


async def test_a_busy_telemetry_port_fails_the_start(
    tmp_path: Path, store: MemoryStore, cluster: Cluster
) -> None:
    busy = cluster.listener.telemetry_address
    settings = dataclasses.replace(
        cluster_settings(tmp_path), telemetry_listen=Listen(busy[0], busy[1])
    )
    listener = ClusterListener(store=store, hub=SnapshotHub(), settings=settings)
    with pytest.raises(OSError, match="telemetry listener"):
        await listener.start()
