"""The sync agent says hello, applies the newest config, answers, reconnects.

A scripted control plane endpoint (a real TLS WebSocket server speaking the
wire messages) stands opposite the real agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from control_plane import pki
from data_plane.agent import SyncAgent, backoff, endpoint_uri, group_of_endpoint
from data_plane.settings import Settings
from shared.delta import diff
from shared.errors import ValidationError
from shared.messages import (
    Applied,
    ApplyError,
    ConfigMessage,
    DeltaMessage,
    Hello,
    Resync,
    decode,
    encode_config,
)
from shared.snapshot import Snapshot, build_config, make_snapshot

SCALE = float(os.environ.get("PORTICO_TEST_TIMEOUT_SCALE", "1"))
GROUP = "5d7c9a7e-1d2b-4c1e-9f3a-2b1c0d9e8f70"
OTHER = "0b6f4a1e-7c2d-4e5f-8a9b-1c2d3e4f5a6b"


def _snapshot(version: int) -> Snapshot:
    service = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": f"svc-{version}",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 8080,
        "enabled": True,
    }
    return make_snapshot(GROUP, version, build_config({"services": [service]}))


@dataclass
class ScriptedControlPlane:
    """Accept agents and hand each connection to the test through a queue."""

    cert: Path
    key: Path
    connections: asyncio.Queue[ServerConnection] = field(default_factory=asyncio.Queue)
    server: Server | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handler(self, connection: ServerConnection) -> None:
        await self.connections.put(connection)
        # Keep the connection open until the test is done with it.
        await connection.wait_closed()

    async def start(self) -> None:
        # This endpoint checks no client certificate: pinning is the real
        # listener's business, tested with it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server = await serve(
            self._handler, "127.0.0.1", 0, ssl=context, compression=None
        )

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}/cp/{GROUP}"

    async def accept(self) -> ServerConnection:
        async with asyncio.timeout(5 * SCALE):
            return await self.connections.get()


async def _receive(connection: ServerConnection) -> object:
    async with asyncio.timeout(5 * SCALE):
        return decode(await connection.recv())


@dataclass
class Node:
    """The agent under test and the configs it applied."""

    agent: SyncAgent
    applied: list[Snapshot] = field(default_factory=list)
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False
    task: asyncio.Task[None] | None = None


@pytest.fixture
async def control_plane(tmp_path: Path) -> AsyncIterator[ScriptedControlPlane]:
    cert, key = pki.ensure_server_certificate(tmp_path / "cp", ["127.0.0.1"])
    cp = ScriptedControlPlane(cert, key)
    await cp.start()
    yield cp
    assert cp.server is not None
    cp.server.close()
    await cp.server.wait_closed()


def _settings(tmp_path: Path, url: str, *, ca: bool = True) -> Settings:
    cert_pem, key_pem = pki.generate_client_certificate("node")
    (tmp_path / "node.crt").write_text(cert_pem)
    (tmp_path / "node.key").write_text(key_pem)
    return Settings(
        cluster_control_plane=url,
        cluster_cert=tmp_path / "node.crt",
        cluster_cert_key=tmp_path / "node.key",
        cluster_ca_cert=(tmp_path / "cp" / "cluster.crt") if ca else None,
        node_labels={"zone": "a"},
    )


@pytest.fixture
async def node(
    tmp_path: Path, control_plane: ScriptedControlPlane
) -> AsyncIterator[Node]:
    holder: list[Node] = []

    async def apply(snapshot: Snapshot) -> None:
        this = holder[0]
        this.started.set()
        if this.gate is not None:
            await this.gate.wait()
        if this.fail:
            raise ValidationError("route r1: invalid regex")
        this.applied.append(snapshot)

    agent = SyncAgent(
        settings=_settings(tmp_path, control_plane.url),
        node_id="node-7",
        apply=apply,
        current=lambda: holder[0].applied[-1] if holder[0].applied else None,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    holder.append(Node(agent))
    holder[0].task = asyncio.create_task(agent.run())
    yield holder[0]
    holder[0].task.cancel()
    await asyncio.gather(holder[0].task, return_exceptions=True)


def test_endpoint_urls_become_websocket_uris() -> None:
    uri = endpoint_uri("https://cp.example:8005/cp/abc/", "/v1/outlet")
    assert uri == "wss://cp.example:8005/cp/abc/v1/outlet"


def test_an_endpoint_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="https://"):
        endpoint_uri("cp.example:8005", "/v1/outlet")


def test_backoff_doubles_up_to_its_bound_with_jitter() -> None:
    delays = backoff(0.5, 30.0)
    values = [next(delays) for _ in range(12)]
    assert 0.25 <= values[0] <= 0.5
    assert 0.5 <= values[1] <= 1.0
    assert all(15.0 <= value <= 30.0 for value in values[7:])
    assert len(set(values)) > 1


def test_missing_client_certificate_is_refused_at_start(tmp_path: Path) -> None:
    async def apply(snapshot: Snapshot) -> None:
        pass

    with pytest.raises(ValidationError, match="--cluster-cert"):
        SyncAgent(
            settings=Settings(cluster_control_plane="https://127.0.0.1:1/cp/x"),
            node_id="n",
            apply=apply,
            current=lambda: None,
        )


def test_labels_the_control_plane_would_refuse_are_refused_at_start(
    tmp_path: Path,
) -> None:
    async def apply(snapshot: Snapshot) -> None:
        pass

    settings = _settings(tmp_path, "https://127.0.0.1:1/cp/x")
    settings = dataclasses.replace(settings, node_labels={"zone": "x" * 100})
    with pytest.raises(ValidationError, match="label value"):
        SyncAgent(settings=settings, node_id="n", apply=apply, current=lambda: None)


def test_no_ca_certificate_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def apply(snapshot: Snapshot) -> None:
        pass

    settings = _settings(tmp_path, "https://127.0.0.1:1/cp/x", ca=False)
    with caplog.at_level(logging.WARNING, logger="data_plane.agent"):
        SyncAgent(settings=settings, node_id="n", apply=apply, current=lambda: None)
    warnings = [r for r in caplog.records if "not verified" in r.getMessage()]
    assert len(warnings) == 1


async def test_hello_names_the_node_and_what_it_runs(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    hello = await _receive(connection)
    assert isinstance(hello, Hello)
    assert (hello.node_id, hello.config_version, hello.config_hash) == (
        "node-7",
        None,
        None,
    )
    assert hello.labels == {"zone": "a"}
    assert "basic-auth" in hello.plugins


async def test_a_config_is_applied_and_acknowledged(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(1)))
    applied = await _receive(connection)
    assert isinstance(applied, Applied)
    assert (applied.version, applied.hash) == (1, _snapshot(1).hash)
    assert node.applied == [_snapshot(1)]
    assert node.agent.connected


async def test_configs_queued_during_an_apply_collapse_to_the_newest(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    node.gate = asyncio.Event()
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(1)))
    async with asyncio.timeout(5 * SCALE):
        await node.started.wait()
    for version in range(2, 6):
        await connection.send(encode_config(_snapshot(version)))
    # Version 1 is being applied; a pong proves 2..5 reached the node.
    async with asyncio.timeout(5 * SCALE):
        await (await connection.ping())
    node.gate.set()

    first, second = await _receive(connection), await _receive(connection)
    assert isinstance(first, Applied) and isinstance(second, Applied)
    assert [first.version, second.version] == [1, 5]
    assert [s.version for s in node.applied] == [1, 5]


async def test_an_apply_failure_is_reported_as_an_error(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    node.fail = True
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(3)))
    error = await _receive(connection)
    assert isinstance(error, ApplyError)
    assert (error.version, error.what) == (3, "compile")
    assert "invalid regex" in error.reason
    assert node.applied == []


async def test_a_corrupt_config_is_reported_and_not_applied(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    good = ConfigMessage.from_snapshot(_snapshot(2))
    forged = ConfigMessage(good.group_id, 2, "b" * 32, good.payload, good.size)
    await connection.send(forged.serialize())
    error = await _receive(connection)
    assert isinstance(error, ApplyError)
    assert error.what == "decode"
    assert node.applied == []


async def test_the_agent_reconnects_and_reports_the_config_it_kept(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(1)))
    await _receive(connection)
    await connection.close(1001, "control plane restarting")

    again = await control_plane.accept()
    hello = await _receive(again)
    assert isinstance(hello, Hello)
    assert (hello.config_version, hello.config_hash) == (1, _snapshot(1).hash)
    assert node.applied == [_snapshot(1)]


async def test_a_refusal_is_kept_as_the_last_error(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.close(1008, "client certificate is not pinned here")

    def refused() -> bool:
        error = node.agent.last_error
        return not node.agent.connected and error is not None and "pinned" in error

    # The window lasts one backoff delay, so look at every loop iteration.
    async with asyncio.timeout(5 * SCALE):
        while not refused():
            await asyncio.sleep(0)
    assert node.agent.last_error == (
        "refused by the control plane: client certificate is not pinned here"
    )


def test_the_group_is_read_from_the_endpoint() -> None:
    assert group_of_endpoint(f"https://cp.example:8005/cp/{GROUP}") == GROUP
    assert group_of_endpoint(f"https://cp.example:8005/cp/{GROUP}/") == GROUP


def test_an_endpoint_without_a_group_is_refused() -> None:
    with pytest.raises(ValidationError, match="/cp/<runtime group id>"):
        group_of_endpoint("https://cp.example:8005/")


async def test_a_config_of_another_group_is_refused_and_reported(
    control_plane: ScriptedControlPlane,
    node: Node,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    other = make_snapshot(OTHER, 4, _snapshot(4).config)
    await connection.send(encode_config(other))
    error = await _receive(connection)
    assert isinstance(error, ApplyError)
    assert (error.version, error.what) == (4, "group")
    assert OTHER in error.reason and GROUP in error.reason
    assert node.applied == []
    assert any(
        r.levelno == logging.WARNING and OTHER in r.getMessage() for r in caplog.records
    )

    # The connection stays up: the node's own group is applied next.
    await connection.send(encode_config(_snapshot(5)))
    applied = await _receive(connection)
    assert isinstance(applied, Applied) and applied.version == 5


async def test_an_older_version_on_the_same_connection_is_a_protocol_error(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(5)))
    await _receive(connection)
    await connection.send(encode_config(_snapshot(4)))
    async with asyncio.timeout(5 * SCALE):
        await connection.wait_closed()
    assert connection.close_code == 1002
    assert connection.close_reason == "config version 4 after version 5"
    assert [s.version for s in node.applied] == [5]


def _delta(base: Snapshot, target: Snapshot, **changes: object) -> bytes:
    message = DeltaMessage.from_delta(
        base.version, base.hash, target, diff(base.config, target.config)
    )
    return dataclasses.replace(message, **changes).serialize()  # type: ignore[arg-type]


async def test_a_delta_is_applied_on_top_of_the_config_served(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    hello = await _receive(connection)
    assert isinstance(hello, Hello) and "delta" in hello.capabilities
    await connection.send(encode_config(_snapshot(1)))
    await _receive(connection)
    await connection.send(_delta(_snapshot(1), _snapshot(2)))
    applied = await _receive(connection)
    assert isinstance(applied, Applied)
    assert (applied.version, applied.hash) == (2, _snapshot(2).hash)
    assert node.applied[-1] == _snapshot(2)


async def test_a_delta_with_a_wrong_base_version_asks_for_the_full_config(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(1)))
    await _receive(connection)
    # A delta from version 2, which this node never ran.
    await connection.send(_delta(_snapshot(2), _snapshot(3)))
    resync = await _receive(connection)
    assert isinstance(resync, Resync)
    assert (resync.version, resync.hash) == (3, _snapshot(3).hash)
    assert resync.reason == "delta from version 2 cannot apply to version 1"
    assert [s.version for s in node.applied] == [1]

    # The full config that follows is applied.
    await connection.send(encode_config(_snapshot(3)))
    applied = await _receive(connection)
    assert isinstance(applied, Applied) and applied.version == 3


async def test_a_delta_whose_result_misses_the_hash_asks_for_the_full_config(
    control_plane: ScriptedControlPlane, node: Node
) -> None:
    connection = await control_plane.accept()
    await _receive(connection)
    await connection.send(encode_config(_snapshot(1)))
    await _receive(connection)
    await connection.send(_delta(_snapshot(1), _snapshot(2), hash="c" * 32))
    resync = await _receive(connection)
    assert isinstance(resync, Resync)
    assert "does not match its hash" in resync.reason
    assert [s.version for s in node.applied] == [1]
