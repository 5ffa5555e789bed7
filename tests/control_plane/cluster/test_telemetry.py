"""The telemetry listener keeps what pinned nodes report, and only theirs."""

from __future__ import annotations

import asyncio

import pytest
from cluster_harness import ClientPair, Cluster, deadline
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from control_plane.cluster import telemetry as telemetry_module
from shared.messages import Telemetry


async def test_telemetry_reports_are_kept_per_node(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    cluster.start_node("g1", pairs["g1"], node_id="node-t", counters={"requests": 7})
    telemetry = cluster.listener.telemetry
    assert telemetry is not None

    async with asyncio.timeout(deadline(5)):
        while "node-t" not in telemetry.reports("g1"):
            await asyncio.sleep(0.01)
    assert telemetry.reports("g1")["node-t"].counters == {"requests": 7}


async def test_telemetry_from_a_certificate_pinned_elsewhere_is_refused(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    telemetry = cluster.listener.telemetry
    assert telemetry is not None
    uri = cluster.url("g1", "tp").replace("https", "wss") + "/v1/telemetry"
    async with connect(
        uri, ssl=pairs["g2"].context(cluster.ca), proxy=None
    ) as connection:
        async with asyncio.timeout(deadline(5)):
            try:
                await connection.send(
                    Telemetry("intruder", {"requests": 1}, 1.0).serialize()
                )
                await connection.recv()
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "intruder" not in telemetry.reports("g1")


async def test_only_the_most_recently_reporting_nodes_are_kept(
    cluster: Cluster, pairs: dict[str, ClientPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_module, "MAX_NODES_PER_GROUP", 2)
    telemetry = cluster.listener.telemetry
    assert telemetry is not None
    uri = cluster.url("g1", "tp").replace("https", "wss") + "/v1/telemetry"
    async with connect(uri, ssl=pairs["g1"].context(cluster.ca), proxy=None) as conn:
        for name in ("node-a", "node-b", "node-a", "node-c"):
            await conn.send(Telemetry(name, {"requests": 1}, 1.0).serialize())
        async with asyncio.timeout(deadline(5)):
            while telemetry.report("g1", "node-c") is None:
                await asyncio.sleep(0.01)
    assert set(telemetry.reports("g1")) == {"node-a", "node-c"}


async def test_a_telemetry_connection_whose_certificate_is_unpinned_is_closed(
    cluster: Cluster, pairs: dict[str, ClientPair]
) -> None:
    telemetry = cluster.listener.telemetry
    assert telemetry is not None
    uri = cluster.url("g1", "tp").replace("https", "wss") + "/v1/telemetry"
    async with connect(uri, ssl=pairs["g1"].context(cluster.ca), proxy=None) as conn:
        await conn.send(Telemetry("node-r", {"requests": 1}, 1.0).serialize())
        async with asyncio.timeout(deadline(5)):
            while telemetry.report("g1", "node-r") is None:
                await asyncio.sleep(0.01)
        cluster.store.certificates["g1"] = []
        await cluster.listener.refresh_certificates()
        async with asyncio.timeout(deadline(5)):
            with pytest.raises(ConnectionClosed) as closed:
                await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "no longer pinned" in closed.value.rcvd.reason
