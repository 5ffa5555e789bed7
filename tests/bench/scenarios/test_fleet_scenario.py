"""The fleet scenario: light sync clients follow a real control plane."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.client import Connection
from bench.context import Context
from bench.processes import Pinning
from bench.scenarios import fleet
from bench.scenarios.propagation import Topology
from control_plane import pki
from tests.conftest import deadline
from tests.support.processes import start_control_plane

pytestmark = pytest.mark.slow


def test_missing_modules_skip_every_target_naming_them(tmp_path: Path) -> None:
    context = Context(
        quick=True,
        runs=1,
        duration=1.0,
        work_dir=tmp_path / "work",
        pinning=Pinning(False, 1, 0, "unpinned"),
        install_tools=False,
        root=tmp_path,
    )
    result = fleet.run(context)
    assert result.status == "skipped"
    assert "bench.fleet" in result.reason
    assert len(result.targets) == 4
    assert {t.status for t in result.targets} == {"skipped"}
    assert result.metrics == []


def test_reads_are_picked_by_the_windows_they_started_in() -> None:
    sampler = fleet.AdminSampler(1, "token", "/")
    sampler.latencies = [(1.0, 5.0), (2.5, 7.0), (4.0, 9.0)]
    assert sampler.latencies_within([(2.0, 3.0), (3.5, 4.0)]) == [7.0, 9.0]


async def test_every_client_applies_each_write(tmp_path: Path) -> None:
    with (
        start_control_plane(tmp_path) as cp,
        httpx.Client(base_url=cp.admin_url, headers=cp.headers, timeout=10) as api,
    ):
        group = api.post("/v2/runtime-groups", json={"name": "fleet"}).json()
        entities = f"/v2/runtime-groups/{group['id']}/core-entities"
        service = api.post(
            entities + "/services", json={"name": "s", "url": "http://s"}
        )
        assert service.status_code == 201, service.text
        cert_pem, key_pem = pki.generate_client_certificate("fleet")
        reply = api.post(
            f"/v2/runtime-groups/{group['id']}/dp-client-certificates",
            json={"cert": cert_pem},
        )
        assert reply.status_code == 201, reply.text
        (tmp_path / "fleet.crt").write_text(cert_pem)
        (tmp_path / "fleet.key").write_text(key_pem)
        topology = Topology(
            "fleet",
            [
                "--cluster-control-plane",
                group["config"]["control_plane_endpoint"],
                "--cluster-cert",
                str(tmp_path / "fleet.crt"),
                "--cluster-cert-key",
                str(tmp_path / "fleet.key"),
                "--cluster-ca-cert",
                str(cp.prefix / "cluster.crt"),
            ],
            f"{entities}/services/{service.json()['id']}",
            f"/v2/runtime-groups/{group['id']}/nodes",
        )

        clients = await fleet.Fleet.start(3, topology, tmp_path)
        admin = Connection(urlsplit(cp.admin_url).port or 0, token=cp.token)
        try:
            first = clients.version
            change = await fleet._change(admin, topology, clients, 0)
            assert clients.version > first
            assert change.sent <= change.answered
            assert change.last >= change.sent
        finally:
            await admin.close()
            await clients.stop()

        # The control plane records each answer a moment after it came.
        end = time.monotonic() + deadline(10)
        while True:
            nodes = api.get(topology.nodes_path).json()["items"]
            versions = {n["config_version"] for n in nodes}
            if versions == {clients.version} or time.monotonic() > end:
                break
            time.sleep(0.02)
        assert sorted(n["id"] for n in nodes) == [f"fleet-{i:05d}" for i in range(3)]
        assert versions == {clients.version}
