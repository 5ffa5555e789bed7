"""Run a cluster listener in-process, with real TLS sockets and sync agents.

The store here is a small in-memory stand-in for the methods the listener
calls; everything else (hub, listener, agent, certificates) is the real code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane import pki
from control_plane.cluster.listener import ClusterListener
from control_plane.hub import SnapshotHub
from control_plane.settings import Listen, Settings
from data_plane.agent import SyncAgent
from data_plane.settings import Settings as NodeSettings
from shared.snapshot import Snapshot, build_config, make_snapshot

# Deadlines scale like the rest of the suite's (see tests/conftest.py).
TIMEOUT_SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))


def deadline(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


class Changes:
    """Let tests wait, with a deadline, for a condition on changing state."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()

    async def changed(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    async def until(self, predicate: Callable[[], bool], seconds: float = 5) -> None:
        async with asyncio.timeout(deadline(seconds)):
            async with self._condition:
                await self._condition.wait_for(predicate)


class MemoryStore:
    """Keep groups, memberships, pinned certificates and nodes in dicts."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}  # composite -> member ids
        self.certificates: dict[str, list[dict[str, Any]]] = {}
        self.nodes: dict[tuple[str, str], dict[str, Any]] = {}
        self.changes = Changes()

    def add_group(self, group_id: str, composite: bool = False) -> None:
        kind = "CLUSTER_TYPE_COMPOSITE" if composite else "CLUSTER_TYPE_HYBRID"
        self.groups[group_id] = {"id": group_id, "config": {"cluster_type": kind}}

    def pin(self, group_id: str, cert_pem: str) -> None:
        self.certificates.setdefault(group_id, []).append(
            {
                "id": f"cert-{len(self.certificates)}",
                "cert": cert_pem,
                "fingerprint": pki.fingerprint(cert_pem),
            }
        )

    def node(self, group_id: str, node_id: str) -> dict[str, Any] | None:
        return self.nodes.get((group_id, node_id))

    async def list_groups(self) -> list[dict[str, Any]]:
        return list(self.groups.values())

    async def get_group(self, group_id: str) -> dict[str, Any] | None:
        return self.groups.get(group_id)

    async def composites_of(self, group_id: str) -> list[str]:
        return sorted(c for c, members in self.members.items() if group_id in members)

    async def pinned_certificates(self, group_id: str) -> list[dict[str, Any]]:
        return list(self.certificates.get(group_id, []))

    async def upsert_node(self, group_id: str, node: dict[str, Any]) -> None:
        self.nodes.setdefault((group_id, node["id"]), {}).update(node)
        await self.changes.changed()

    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None:
        row = self.nodes.get((group_id, node_id))
        if row is not None:
            row["connected"] = connected
        await self.changes.changed()


@dataclass
class ClientPair:
    """A client certificate and key written to files, as a node gets them."""

    cert: Path
    key: Path
    cert_pem: str

    def context(self, ca: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(self.cert, self.key)
        context.load_verify_locations(ca)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context


def make_client_pair(directory: Path, name: str) -> ClientPair:
    cert_pem, key_pem = pki.generate_client_certificate(name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.crt").write_text(cert_pem)
    (directory / f"{name}.key").write_text(key_pem)
    return ClientPair(directory / f"{name}.crt", directory / f"{name}.key", cert_pem)


def snapshot(group_id: str, version: int, services: int = 1) -> Snapshot:
    """Return a small snapshot whose content depends on the version."""
    entities = [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "name": f"svc-{version}-{i}",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": 8080,
            "enabled": True,
        }
        for i in range(services)
    ]
    return make_snapshot(group_id, version, build_config({"services": entities}))


@dataclass
class Node:
    """A sync agent in this process and what it applied, in order."""

    agent: SyncAgent
    applied: list[Snapshot] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)
    fail_versions: set[int] = field(default_factory=set)

    def current(self) -> Snapshot | None:
        return self.applied[-1] if self.applied else None

    @property
    def versions(self) -> list[int]:
        return [s.version for s in self.applied]


@dataclass
class Cluster:
    """A running listener, its hub and store, and helpers to add nodes."""

    listener: ClusterListener
    hub: SnapshotHub
    store: MemoryStore
    ca: Path
    tmp_path: Path
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def url(self, group_id: str, kind: str = "cp") -> str:
        host, port = (
            self.listener.address if kind == "cp" else self.listener.telemetry_address
        )
        return f"https://{host}:{port}/{kind}/{group_id}"

    def start_node(
        self,
        group_id: str,
        pair: ClientPair,
        *,
        node_id: str = "node-1",
        initial: Snapshot | None = None,
        plugins: tuple[str, ...] = ("basic-auth",),
        counters: Mapping[str, int] | None = None,
        ca: bool = True,
    ) -> Node:
        settings = NodeSettings(
            cluster_control_plane=self.url(group_id),
            cluster_telemetry_endpoint=(
                self.url(group_id, "tp") if counters is not None else None
            ),
            cluster_cert=pair.cert,
            cluster_cert_key=pair.key,
            cluster_ca_cert=self.ca if ca else None,
        )
        holder: list[Node] = []

        async def apply(snapshot: Snapshot) -> None:
            node = holder[0]
            if snapshot.version in node.fail_versions:
                from shared.errors import ValidationError

                raise ValidationError(f"cannot compile version {snapshot.version}")
            node.applied.append(snapshot)
            await node.changes.changed()

        agent = SyncAgent(
            settings=settings,
            node_id=node_id,
            apply=apply,
            current=lambda: holder[0].current(),
            counters=(lambda: counters) if counters is not None else None,
            plugins=plugins,
            backoff_initial=0.05,
            backoff_max=0.5,
            telemetry_interval=0.05,
        )
        node = Node(agent)
        if initial is not None:
            node.applied.append(initial)
        holder.append(node)
        self.tasks.append(asyncio.create_task(agent.run()))
        return node


def cluster_settings(tmp_path: Path) -> Settings:
    return Settings(
        admin_listen=Listen("127.0.0.1", 0),
        cluster_listen=Listen("127.0.0.1", 0),
        telemetry_listen=Listen("127.0.0.1", 0),
        prefix=tmp_path / "cp",
        database=tmp_path / "cp" / "portico.db",
        cluster_public_url="https://127.0.0.1:0",
        telemetry_public_url="https://127.0.0.1:0",
    )


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path: Path, store: MemoryStore, hub: SnapshotHub, **options: Any
) -> AsyncIterator[Cluster]:
    """Run a listener with short intervals; `options` override its arguments."""
    arguments: dict[str, Any] = {
        "status_interval": 0.05,
        "recheck_interval": 0.1,
        "cert_refresh_interval": 0.05,
        **options,
    }
    listener = ClusterListener(
        store=store, hub=hub, settings=cluster_settings(tmp_path), **arguments
    )
    await listener.start()
    cluster = Cluster(listener, hub, store, tmp_path / "cp" / "cluster.crt", tmp_path)
    try:
        yield cluster
    finally:
        for task in cluster.tasks:
            task.cancel()
        await asyncio.gather(*cluster.tasks, return_exceptions=True)
        await listener.close()
