"""The walkthrough across real processes: CP, composite group, DP, echo upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)
from support.processes import ControlPlaneProcess, start_control_plane
from support.waiting import eventually

from control_plane import pki

pytestmark = pytest.mark.slow


@dataclass
class Walkthrough:
    cp: ControlPlaneProcess
    api: httpx.Client
    echo: EchoProcess
    groups: dict[str, dict[str, Any]]
    tmp_path: Path

    def pin_new_pair(self, group: str, name: str) -> tuple[Path, Path]:
        cert_pem, key_pem = pki.generate_client_certificate(name)
        reply = self.api.post(
            f"/v2/runtime-groups/{self.groups[group]['id']}/dp-client-certificates",
            json={"cert": cert_pem, "title": name},
        )
        assert reply.status_code == 201, reply.text
        cert, key = self.tmp_path / f"{name}.crt", self.tmp_path / f"{name}.key"
        cert.write_text(cert_pem)
        key.write_text(key_pem)
        return cert, key

    def start_node(
        self, group: str, name: str, *, pinned_to: str | None = None, **opts: str
    ) -> DataPlaneProcess:
        cert, key = self.pin_new_pair(pinned_to or group, name)
        return start_data_plane(
            self.tmp_path,
            control_plane=self.groups[group]["config"]["control_plane_endpoint"],
            cert=cert,
            key=key,
            ca=self.cp.prefix / "cluster.crt",
            wait_ready=False,
            **opts,
        )

    def node_rows(self, group: str) -> list[dict[str, Any]]:
        reply = self.api.get(f"/v2/runtime-groups/{self.groups[group]['id']}/nodes")
        assert reply.status_code == 200, reply.text
        items: list[dict[str, Any]] = reply.json()["items"]
        return items

    def serve_mock(self, node: DataPlaneProcess) -> None:
        """Route /mock in SRG1 to the echo upstream; wait until the node serves it."""
        srg1 = self.entities("SRG1")
        reply = self.api.post(
            srg1 + "/services", json={"name": "mock", "url": self.echo.url}
        )
        assert reply.status_code == 201, reply.text
        reply = self.api.post(srg1 + "/services/mock/routes", json={"paths": ["/mock"]})
        assert reply.status_code == 201, reply.text

        def served() -> bool:
            answer = _proxy_status(node, "/mock/request")
            return answer is not None and answer.status_code == 200

        eventually(served)

    def entities(self, group: str) -> str:
        return f"/v2/runtime-groups/{self.groups[group]['id']}/core-entities"


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[Walkthrough]:
    with (
        start_echo(tmp_path) as echo,
        start_control_plane(tmp_path) as cp,
        httpx.Client(base_url=cp.admin_url, headers=cp.headers, timeout=10) as api,
    ):
        groups: dict[str, dict[str, Any]] = {}
        for name, kind in (
            ("SRG1", "CLUSTER_TYPE_HYBRID"),
            ("SRG2", "CLUSTER_TYPE_HYBRID"),
            ("CRG", "CLUSTER_TYPE_COMPOSITE"),
        ):
            reply = api.post(
                "/v2/runtime-groups", json={"name": name, "cluster_type": kind}
            )
            assert reply.status_code == 201, reply.text
            groups[name] = reply.json()
        members = [{"id": groups["SRG1"]["id"]}, {"id": groups["SRG2"]["id"]}]
        reply = api.post(
            f"/v2/runtime-groups/{groups['CRG']['id']}/composite-memberships/add",
            json={"members": members},
        )
        assert reply.status_code == 204, reply.text
        yield Walkthrough(cp, api, echo, groups, tmp_path)


def _proxy_status(node: DataPlaneProcess, path: str) -> httpx.Response | None:
    try:
        return httpx.get(node.proxy_url + path, timeout=5)
    except httpx.TransportError:
        return None


def test_a_composite_node_serves_its_members_merged_config(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node("CRG", "crg-node")
    with node:
        eventually(lambda: node.status()["control_plane"]["connected"])

        api, srg1 = walkthrough.api, walkthrough.entities("SRG1")
        reply = api.post(
            srg1 + "/services", json={"name": "mock", "url": walkthrough.echo.url}
        )
        assert reply.status_code == 201, reply.text
        reply = api.post(srg1 + "/services/mock/routes", json={"paths": ["/mock"]})
        assert reply.status_code == 201, reply.text

        def served() -> bool:
            answer = _proxy_status(node, "/mock/request")
            return answer is not None and answer.status_code == 200

        eventually(served)

        srg2 = walkthrough.entities("SRG2")
        reply = api.post(srg2 + "/plugins", json={"name": "basic-auth"})
        assert reply.status_code == 201, reply.text

        def unauthorized() -> httpx.Response | None:
            answer = _proxy_status(node, "/mock/request")
            return answer if answer and answer.status_code == 401 else None

        answer = eventually(unauthorized)
        assert answer.json()["message"] == "Unauthorized"


def test_the_nodes_api_shows_the_node_in_sync_with_its_lag(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node("CRG", "crg-node")
    crg = walkthrough.groups["CRG"]["id"]
    with node:
        eventually(lambda: node.status()["control_plane"]["connected"])
        reply = walkthrough.api.post(
            walkthrough.entities("SRG1") + "/services",
            json={"name": "mock", "url": walkthrough.echo.url},
        )
        assert reply.status_code == 201, reply.text
        expected = walkthrough.api.get(
            f"/v2/runtime-groups/{crg}/expected-config-hash"
        ).json()["expected_hash"]

        def in_sync() -> dict[str, Any] | None:
            items = walkthrough.api.get(f"/v2/runtime-groups/{crg}/nodes").json()
            for item in items["items"]:
                if item["config_hash"] == expected and item["sync_state"] == "in_sync":
                    return dict(item)
            return None

        item = eventually(in_sync)
        assert item["connected"] is True
        assert item["lag_ms"] is not None
        assert item["compatibility_status"]["state"] == (
            "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
        )


def test_a_member_group_refuses_data_plane_nodes(walkthrough: Walkthrough) -> None:
    node = walkthrough.start_node("SRG1", "srg1-node")
    with node:

        def refused() -> str | None:
            error = node.status()["control_plane"]["last_error"]
            return error if error and "member of composite" in error else None

        eventually(refused)
        assert not node.status()["control_plane"]["connected"]


def test_a_group_with_a_connected_node_cannot_become_a_member(
    walkthrough: Walkthrough,
) -> None:
    reply = walkthrough.api.post(
        "/v2/runtime-groups",
        json={"name": "SRG3", "cluster_type": "CLUSTER_TYPE_HYBRID"},
    )
    assert reply.status_code == 201, reply.text
    walkthrough.groups["SRG3"] = reply.json()
    node = walkthrough.start_node("SRG3", "srg3-node")
    srg3 = walkthrough.groups["SRG3"]["id"]
    with node:

        def recorded() -> bool:
            items = walkthrough.api.get(f"/v2/runtime-groups/{srg3}/nodes").json()
            return any(item["connected"] for item in items["items"])

        # The node says connected once its hello is out; the control plane
        # records it a moment later.
        eventually(recorded)
        crg = walkthrough.groups["CRG"]["id"]
        reply = walkthrough.api.post(
            f"/v2/runtime-groups/{crg}/composite-memberships/add",
            json={"members": [{"id": walkthrough.groups["SRG3"]["id"]}]},
        )
        assert reply.status_code in (400, 409), reply.text


def test_a_node_keeps_serving_while_the_control_plane_is_down(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node("CRG", "crg-node")
    with node:
        api, srg1 = walkthrough.api, walkthrough.entities("SRG1")
        api.post(srg1 + "/services", json={"name": "mock", "url": walkthrough.echo.url})
        api.post(srg1 + "/services/mock/routes", json={"paths": ["/mock"]})

        def served() -> bool:
            answer = _proxy_status(node, "/mock/request")
            return answer is not None and answer.status_code == 200

        eventually(served)
        walkthrough.cp.stop()
        eventually(lambda: not node.status()["control_plane"]["connected"])
        answer = _proxy_status(node, "/mock/request")
        assert answer is not None and answer.status_code == 200


def test_a_composite_in_conflict_holds_its_nodes_on_the_last_good_config(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node("CRG", "crg-node")
    crg = walkthrough.groups["CRG"]["id"]
    api, srg1, srg2 = (
        walkthrough.api,
        walkthrough.entities("SRG1"),
        walkthrough.entities("SRG2"),
    )
    with node:
        api.post(srg1 + "/services", json={"name": "mock", "url": walkthrough.echo.url})
        api.post(srg1 + "/services/mock/routes", json={"paths": ["/mock"]})

        def served() -> bool:
            answer = _proxy_status(node, "/mock/request")
            return answer is not None and answer.status_code == 200

        eventually(served)
        good = node.status()["config"]["version"]

        # The same service name in the other member: the composite conflicts.
        reply = api.post(
            srg2 + "/services", json={"name": "mock", "url": walkthrough.echo.url}
        )
        assert reply.status_code == 201, reply.text

        def held() -> bool:
            items = api.get(f"/v2/runtime-groups/{crg}/nodes").json()["items"]
            return any(item["sync_state"] == "held_by_conflict" for item in items)

        eventually(held)
        assert node.status()["config"]["version"] == good
        assert served()

        # Resolving the conflict releases the newest merged config.
        assert api.delete(srg2 + "/services/mock").status_code == 204
        eventually(lambda: node.status()["config"]["version"] > good)


def test_a_node_with_another_groups_certificate_learns_no_config(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node("CRG", "intruder", pinned_to="SRG1")
    with node:

        def refused() -> str | None:
            error = node.status()["control_plane"]["last_error"]
            return error if error and "not pinned" in error else None

        eventually(refused)
        assert node.status()["config"]["version"] is None
        assert not walkthrough.node_rows("CRG")
        ready = httpx.get(node.status_url + "/status/ready", timeout=5)
        assert ready.status_code == 503


def test_a_config_with_a_plugin_the_node_lacks_marks_it_incompatible(
    walkthrough: Walkthrough,
) -> None:
    # The node offers only basic-auth, as Kong's `plugins` setting would.
    node = walkthrough.start_node("CRG", "crg-node", plugins="basic-auth")
    with node:
        walkthrough.serve_mock(node)
        good = node.status()["config"]["version"]
        reply = walkthrough.api.post(
            walkthrough.entities("SRG2") + "/plugins", json={"name": "cors"}
        )
        assert reply.status_code == 201, reply.text

        def incompatible() -> dict[str, Any] | None:
            for row in walkthrough.node_rows("CRG"):
                if row["sync_state"] == "incompatible":
                    return row
            return None

        row = eventually(incompatible)
        status = row["compatibility_status"]
        assert status["state"] == "COMPATIBILITY_STATE_INCOMPATIBLE"
        assert [i["code"] for i in status["issues"]] == ["plugin_set_incompatible"]
        assert node.status()["config"]["version"] == good


def test_the_nodes_api_shows_the_request_counters_a_node_reports(
    walkthrough: Walkthrough,
) -> None:
    node = walkthrough.start_node(
        "CRG",
        "crg-node",
        cluster_telemetry_endpoint=walkthrough.groups["CRG"]["config"][
            "telemetry_endpoint"
        ],
        cluster_telemetry_interval="0.2",
    )
    with node:
        walkthrough.serve_mock(node)
        for _ in range(3):
            answer = _proxy_status(node, "/nowhere")
            assert answer is not None and answer.status_code == 404

        def counted() -> dict[str, Any] | None:
            for row in walkthrough.node_rows("CRG"):
                telemetry = row.get("telemetry")
                if telemetry and telemetry["counters"]["responses_4xx"] >= 3:
                    return dict(telemetry)
            return None

        telemetry = eventually(counted)
        counters = telemetry["counters"]
        assert counters["responses_2xx"] >= 1
        assert counters["requests"] >= counters["responses_2xx"] + 3
        assert node.status()["counters"]["responses_4xx"] >= 3
