"""Data plane nodes outlive their control plane: kills, restarts, partitions.

Real processes throughout: a control plane, an echo upstream, data plane
nodes, and a TCP relay between each node and the control plane that the test
partitions or cuts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)
from support.processes import ControlPlaneProcess, start_control_plane
from support.relay import ThreadedRelay, start_relay
from support.waiting import eventually

from control_plane import pki

pytestmark = pytest.mark.slow


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


@dataclass
class Site:
    """A control plane with one runtime group, an echo upstream and a relay."""

    tmp_path: Path
    cp: ControlPlaneProcess
    echo: EchoProcess
    relay: ThreadedRelay
    group: dict[str, Any]
    cert: Path
    key: Path
    nodes: list[DataPlaneProcess] = field(default_factory=list)

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.cp.admin_url, headers=self.cp.headers, timeout=10
        )

    @property
    def entities(self) -> str:
        return f"/v2/runtime-groups/{self.group['id']}/core-entities"

    def add_route(self, path: str) -> None:
        with self.api as api:
            name = path.strip("/")
            reply = api.post(
                self.entities + "/services", json={"name": name, "url": self.echo.url}
            )
            assert reply.status_code == 201, reply.text
            reply = api.post(
                self.entities + f"/services/{name}/routes", json={"paths": [path]}
            )
            assert reply.status_code == 201, reply.text

    def expected_hash(self) -> str:
        with self.api as api:
            reply = api.get(
                f"/v2/runtime-groups/{self.group['id']}/expected-config-hash"
            )
            assert reply.status_code == 200, reply.text
            return str(reply.json()["expected_hash"])

    def node_rows(self) -> list[dict[str, Any]]:
        with self.api as api:
            reply = api.get(f"/v2/runtime-groups/{self.group['id']}/nodes")
            assert reply.status_code == 200, reply.text
            return list(reply.json()["items"])

    def start_node(self, prefix: Path | None = None, **opts: str) -> DataPlaneProcess:
        """Start a node of the group, dialling the control plane through the relay."""
        # Debug logs show whether a change came as a delta.
        options = {"cluster_ping_interval": "0.5", "log_level": "debug", **opts}
        if prefix is not None:
            options["prefix"] = str(prefix)
        node = start_data_plane(
            self.tmp_path,
            control_plane=f"https://127.0.0.1:{self.relay.port}/cp/{self.group['id']}",
            cert=self.cert,
            key=self.key,
            ca=self.cp.prefix / "cluster.crt",
            wait_ready=False,
            **options,
        )
        self.nodes.append(node)
        return node

    def restart_control_plane(self) -> None:
        """Start the control plane again on the same ports and data."""
        self.cp = start_control_plane(
            self.tmp_path,
            token=self.cp.token,
            prefix=str(self.cp.prefix),
            admin_listen=f"127.0.0.1:{_port(self.cp.admin_url)}",
            cluster_listen=f"127.0.0.1:{_port(self.cp.cluster_url)}",
            cluster_telemetry_listen=f"127.0.0.1:{_port(self.cp.telemetry_url)}",
            cluster_ping_interval="0.5",
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with (
        start_echo(tmp_path) as echo,
        start_control_plane(tmp_path, cluster_ping_interval="0.5") as cp,
    ):
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            reply = api.post(
                "/v2/runtime-groups",
                json={"name": "edge", "cluster_type": "CLUSTER_TYPE_HYBRID"},
            )
            assert reply.status_code == 201, reply.text
            group = reply.json()
            cert_pem, key_pem = pki.generate_client_certificate("edge-node")
            reply = api.post(
                f"/v2/runtime-groups/{group['id']}/dp-client-certificates",
                json={"cert": cert_pem},
            )
            assert reply.status_code == 201, reply.text
        cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
        cert.write_text(cert_pem)
        key.write_text(key_pem)
        with start_relay("127.0.0.1", _port(cp.cluster_url)) as relay:
            site = Site(tmp_path, cp, echo, relay, group, cert, key)
            try:
                yield site
            finally:
                for node in site.nodes:
                    node.stop()
                site.cp.stop()


class Load:
    """Send proxied requests from two threads until stopped; count outcomes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(keep_alive,), daemon=True)
            for keep_alive in (True, False)
        ]

    def _run(self, keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        with httpx.Client(timeout=5, limits=limits) as client:
            while not self._stop.is_set():
                try:
                    reply = client.get(self.url)
                except httpx.TransportError as exc:
                    self.failures.append(repr(exc))
                    continue
                if reply.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{reply.status_code} {reply.text[:80]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def _serves(node: DataPlaneProcess, path: str) -> bool:
    answer = _get(node.proxy_url + path)
    return answer is not None and answer.status_code == 200


def test_a_node_outlives_a_killed_control_plane_and_catches_up(site: Site) -> None:
    site.add_route("/mock")
    node = site.start_node()
    eventually(lambda: _serves(node, "/mock/request"))
    served_version = node.status()["config"]["version"]

    # SIGKILL under load: not one proxied request may fail.
    with Load(node.proxy_url + "/mock/request") as load:
        eventually(lambda: load.ok > 50)
        site.cp.process.kill()
        site.cp.process.wait()
        eventually(lambda: not node.status()["control_plane"]["connected"])
        before = load.ok
        eventually(lambda: load.ok > before + 50)
    assert load.failures == []

    # A restart while the control plane is down serves the cached config.
    prefix = node.prefix
    node.stop()
    node = site.start_node(prefix=prefix)
    ready = _get(node.status_url + "/status/ready")
    assert ready is not None and ready.status_code == 200
    status = node.status()
    assert status["config"]["source"] == "cache"
    assert status["config"]["version"] == served_version
    assert not status["control_plane"]["connected"]
    assert _serves(node, "/mock/request")

    # The control plane comes back and changes while the node cannot reach
    # it; once the link heals the node catches up.
    site.relay.partition()
    site.restart_control_plane()
    site.add_route("/late")
    expected = site.expected_hash()
    assert not _serves(node, "/late/request")
    site.relay.heal()
    eventually(lambda: node.status()["config"]["hash"] == expected)
    assert node.status()["config"]["source"] == "control_plane"
    assert _serves(node, "/late/request")
    assert _serves(node, "/mock/request")
    # The restarted control plane logged the changes from the version it
    # loaded, which the node ran: it caught up through a delta.
    assert "received delta version" in node.output()


def test_a_partitioned_node_keeps_serving_and_converges_after_the_heal(
    site: Site,
) -> None:
    site.add_route("/mock")
    node = site.start_node()
    eventually(lambda: _serves(node, "/mock/request"))
    node_id = node.status()["node_id"]

    site.relay.partition()
    # Keepalive pings find the peer gone on both sides.
    eventually(lambda: not node.status()["control_plane"]["connected"])
    eventually(
        lambda: any(
            row["id"] == node_id and row["connected"] is False
            for row in site.node_rows()
        )
    )
    assert _serves(node, "/mock/request")

    site.add_route("/late")
    expected = site.expected_hash()
    site.relay.heal()
    eventually(lambda: node.status()["config"]["hash"] == expected)
    assert node.status()["control_plane"]["connected"]
    assert _serves(node, "/late/request")
    assert "received delta version" in node.output()
    eventually(
        lambda: any(
            row["id"] == node_id
            and row["connected"] is True
            and row["sync_state"] == "in_sync"
            for row in site.node_rows()
        )
    )


def test_revoking_a_certificate_disconnects_its_node_within_seconds(
    site: Site,
) -> None:
    site.add_route("/mock")
    node = site.start_node()
    eventually(lambda: node.status()["control_plane"]["connected"])
    group = site.group["id"]
    with site.api as api:
        pinned = api.get(f"/v2/runtime-groups/{group}/dp-client-certificates").json()
        (cert,) = pinned["items"]
        reply = api.delete(
            f"/v2/runtime-groups/{group}/dp-client-certificates/{cert['id']}"
        )
        assert reply.status_code == 204, reply.text

    def refused() -> str | None:
        link = node.status()["control_plane"]
        error = link["last_error"] or ""
        return error if not link["connected"] and "pinned" in error else None

    assert "refused by the control plane" in eventually(refused, seconds=5)
    # Refused for good, and still serving what it had.
    assert _serves(node, "/mock/request")
    assert not any(row["connected"] for row in site.node_rows())


def test_a_config_the_node_cannot_compile_is_reported_and_the_old_one_serves(
    site: Site,
) -> None:
    site.add_route("/mock")
    node = site.start_node()
    eventually(lambda: _serves(node, "/mock/request"))
    good = node.status()["config"]

    # The admin API refuses a header regex that does not compile, but a
    # database written by another version of Portico may hold one: the
    # route is changed behind the control plane's back while it is down.
    site.cp.stop()
    database = sqlite3.connect(site.cp.prefix / "portico.db")
    with database:
        (body,) = database.execute(
            "SELECT body FROM entities WHERE type = 'routes'"
        ).fetchone()
        route = json.loads(body)
        route["headers"] = {"x-version": ["~*(unclosed"]}
        database.execute(
            "UPDATE entities SET body = ? WHERE type = 'routes'", [json.dumps(route)]
        )
    database.close()
    site.restart_control_plane()

    def failed() -> dict[str, Any] | None:
        for row in site.node_rows():
            if row["sync_state"] == "apply_failed":
                return row
        return None

    row = eventually(failed)
    assert ": compile: " in row["error"] and "x-version" in row["error"]
    assert (row["config_version"], row["config_hash"]) == (
        good["version"],
        good["hash"],
    )
    assert node.status()["config"] == good
    assert _serves(node, "/mock/request")
