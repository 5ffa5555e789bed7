"""Two hundred nodes reconnect after a control plane restart, without a storm.

A real control plane process serves 200 light sync clients: the real sync
agent with an in-memory config, no proxy. Each client dials through a TCP
relay of its own, which records when the client dialled. The control plane
restarts; the test checks that every client converges on a change made after
the restart, that the admin API kept answering (its p99 latency is printed),
and that no client dialled again sooner than its backoff allows.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.processes import ControlPlaneProcess, start_control_plane
from support.relay import TcpRelay

from control_plane import pki
from data_plane.agent import SyncAgent
from data_plane.settings import Settings
from shared.snapshot import Snapshot

pytestmark = pytest.mark.slow

SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))
CLIENTS = 200
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0


@dataclass
class Client:
    """One light sync client: an agent, the config it holds, its relay."""

    relay: TcpRelay
    agent: SyncAgent | None = None
    config: Snapshot | None = None
    task: asyncio.Task[None] | None = None

    async def apply(self, snapshot: Snapshot) -> None:
        self.config = snapshot


@dataclass
class Latencies:
    """Time admin API requests from a thread of their own until stopped."""

    url: str
    headers: dict[str, str]
    samples: list[float] = field(default_factory=list)
    # When each failed request started (monotonic), and why it failed.
    errors: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = client.get(self.url)
                except httpx.TransportError as exc:
                    # The control plane is down for part of the run.
                    self.errors.append((started, repr(exc)))
                    time.sleep(0.05)
                    continue
                if reply.status_code == 200:
                    self.samples.append(time.monotonic() - started)
                else:
                    self.errors.append((started, str(reply.status_code)))
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()

    def p99(self) -> float:
        return statistics.quantiles(self.samples, n=100)[98]


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


async def _until(probe: Any, seconds: float) -> None:
    end = time.monotonic() + seconds * SCALE
    while not probe():
        if time.monotonic() > end:
            pytest.fail(f"condition not met within {seconds}s")
        await asyncio.sleep(0.1)


def _restart(cp: ControlPlaneProcess, tmp_path: Path) -> ControlPlaneProcess:
    return start_control_plane(
        tmp_path,
        token=cp.token,
        prefix=str(cp.prefix),
        admin_listen=f"127.0.0.1:{_port(cp.admin_url)}",
        cluster_listen=f"127.0.0.1:{_port(cp.cluster_url)}",
        cluster_telemetry_listen=f"127.0.0.1:{_port(cp.telemetry_url)}",
    )


def _min_gaps(accepted: list[float], since: float) -> list[float]:
    times = [t for t in accepted if t >= since]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_two_hundred_nodes_reconnect_after_a_restart_without_a_storm(
    tmp_path: Path,
) -> None:
    cp = start_control_plane(tmp_path)
    api = httpx.AsyncClient(base_url=cp.admin_url, headers=cp.headers, timeout=10)
    clients: list[Client] = []
    latencies: Latencies | None = None
    try:
        reply = await api.post(
            "/v2/runtime-groups",
            json={"name": "fleet", "cluster_type": "CLUSTER_TYPE_HYBRID"},
        )
        group = reply.json()
        entities = f"/v2/runtime-groups/{group['id']}/core-entities"
        await api.post(entities + "/services", json={"name": "a", "url": "http://a"})
        cert_pem, key_pem = pki.generate_client_certificate("fleet-node")
        reply = await api.post(
            f"/v2/runtime-groups/{group['id']}/dp-client-certificates",
            json={"cert": cert_pem},
        )
        assert reply.status_code == 201, reply.text
        (tmp_path / "fleet.crt").write_text(cert_pem)
        (tmp_path / "fleet.key").write_text(key_pem)

        # One relay per client, each recording when its client dials.
        for index in range(CLIENTS):
            relay = TcpRelay("127.0.0.1", _port(cp.cluster_url))
            await relay.start()
            client = Client(relay)
            client.agent = SyncAgent(
                settings=Settings(
                    cluster_control_plane=(
                        f"https://127.0.0.1:{relay.port}/cp/{group['id']}"
                    ),
                    cluster_cert=tmp_path / "fleet.crt",
                    cluster_cert_key=tmp_path / "fleet.key",
                    cluster_ca_cert=cp.prefix / "cluster.crt",
                ),
                node_id=f"fleet-{index:03d}",
                apply=client.apply,
                current=lambda c=client: c.config,
                backoff_initial=BACKOFF_INITIAL,
                backoff_max=BACKOFF_MAX,
            )
            client.task = asyncio.create_task(client.agent.run())
            clients.append(client)

        async def expected() -> str:
            reply = await api.get(
                f"/v2/runtime-groups/{group['id']}/expected-config-hash"
            )
            return str(reply.json()["expected_hash"])

        first = await expected()
        await _until(
            lambda: all(c.config and c.config.hash == first for c in clients), 60
        )

        # Restart the control plane under the admin API's eye.
        cp.stop()
        restarted_at = time.monotonic()
        latencies = Latencies(
            f"{cp.admin_url}/v2/runtime-groups/{group['id']}/nodes?page[size]=1000",
            cp.headers,
        )
        watcher = threading.Thread(target=latencies.run, daemon=True)
        watcher.start()
        await asyncio.sleep(1.0)
        cp = await asyncio.to_thread(_restart, cp, tmp_path)
        up_at = time.monotonic()

        await _until(lambda: all(c.agent and c.agent.connected for c in clients), 40)
        reconnected_in = time.monotonic() - up_at
        await api.post(entities + "/services", json={"name": "b", "url": "http://b"})
        second = await expected()
        await _until(
            lambda: all(c.config and c.config.hash == second for c in clients), 30
        )
        converged_in = time.monotonic() - up_at

        reply = await api.get(f"/v2/runtime-groups/{group['id']}/nodes?page[size]=1000")
        rows = reply.json()["items"]
        assert len(rows) == CLIENTS
        assert all(row["connected"] for row in rows)
        latencies.stop()
        watcher.join(15)
    finally:
        if latencies is not None:
            latencies.stop()
        for client in clients:
            if client.task is not None:
                client.task.cancel()
        await asyncio.gather(
            *(c.task for c in clients if c.task), return_exceptions=True
        )
        for client in clients:
            await client.relay.close()
        await api.aclose()
        cp.stop()

    # No client dialled sooner than the shortest delay its backoff allows
    # (half the initial delay, the jitter's floor), with room for the
    # event loop's own scheduling.
    gaps = [gap for c in clients for gap in _min_gaps(c.relay.accepted, restarted_at)]
    assert gaps and min(gaps) >= BACKOFF_INITIAL / 2 * 0.8, min(gaps)
    # While the control plane was down, dials thinned out: doubling delays
    # allow a handful per client, not one per loop.
    down = up_at - restarted_at
    dials = [
        sum(1 for t in c.relay.accepted if restarted_at <= t < up_at) for c in clients
    ]
    assert max(dials) <= 2 + down / (BACKOFF_INITIAL / 2), (max(dials), down)

    samples = latencies.samples
    p99 = latencies.p99()
    # Once back, the admin API answered every request.
    assert [e for e in latencies.errors if e[0] >= up_at] == []
    print(
        f"\nreconnect storm: {CLIENTS} clients, control plane down {down:.1f}s, "
        f"all reconnected {reconnected_in:.1f}s and converged {converged_in:.1f}s "
        f"after it was back; admin API p50 {statistics.median(samples) * 1000:.0f} "
        f"ms p99 {p99 * 1000:.0f} ms over {len(samples)} requests; "
        f"dials per client while down: max {max(dials)}, "
        f"shortest gap between dials {min(gaps):.2f}s"
    )
    # The admin API answered throughout (a generous bound, not a benchmark).
    assert p99 < 5.0
