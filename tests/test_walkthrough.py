"""The composite runtime group walkthrough, end to end, against real processes.

A control plane, the echo upstream and a data plane node run as separate
processes on free ports; every step goes over HTTP the way a user's curl does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)
from tests.support.processes import ControlPlaneProcess, start_control_plane


def wait_until(what: str, check: Callable[[], bool], seconds: float = 10) -> None:
    """Poll `check` until it holds, failing with `what` after the deadline."""
    end = time.monotonic() + deadline(seconds)
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what}: not seen within {seconds} s")


class Walkthrough:
    """The processes of one walkthrough and the admin API client."""

    def __init__(
        self, tmp_path: Path, cp: ControlPlaneProcess, echo: EchoProcess
    ) -> None:
        self.tmp_path = tmp_path
        self.cp = cp
        self.echo = echo
        self.admin = httpx.Client(base_url=cp.admin_url, headers=cp.headers)
        self.groups: dict[str, dict[str, Any]] = {}

    def create_group(self, name: str, cluster_type: str) -> dict[str, Any]:
        reply = self.admin.post(
            "/v2/runtime-groups", json={"name": name, "cluster_type": cluster_type}
        )
        assert reply.status_code == 201, reply.text
        group: dict[str, Any] = reply.json()
        self.groups[name] = group
        return group

    def entities(self, group: str) -> str:
        return f"/v2/runtime-groups/{self.groups[group]['id']}/core-entities"

    def form(self, path: str, **fields: str | list[str]) -> dict[str, Any]:
        """POST a form body the way `curl --data` does; expect 201."""
        reply = self.admin.post(path, data=fields)
        assert reply.status_code == 201, reply.text
        body: dict[str, Any] = reply.json()
        return body

    def start_node(self, group: str) -> DataPlaneProcess:
        """Pin a generated certificate to `group` and start a node against it."""
        group_id = self.groups[group]["id"]
        reply = self.admin.post(
            f"/v2/runtime-groups/{group_id}/dp-client-certificates/generate",
            json={"title": "walkthrough node"},
        )
        assert reply.status_code == 201, reply.text
        cert = self.tmp_path / f"{group}.crt"
        key = self.tmp_path / f"{group}.key"
        cert.write_text(reply.json()["item"]["cert"])
        key.write_text(reply.json()["private_key"])
        return start_data_plane(
            self.tmp_path,
            control_plane=self.groups[group]["config"]["control_plane_endpoint"],
            cert=cert,
            key=key,
            ca=self.cp.prefix / "cluster.crt",
            wait_ready=True,
        )


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[Walkthrough]:
    with start_control_plane(tmp_path) as cp, start_echo(tmp_path) as echo:
        flow = Walkthrough(tmp_path, cp, echo)
        flow.create_group("SRG1", "CLUSTER_TYPE_HYBRID")
        flow.create_group("SRG2", "CLUSTER_TYPE_HYBRID")
        crg = flow.create_group("CRG", "CLUSTER_TYPE_COMPOSITE")
        members = [{"id": flow.groups[name]["id"]} for name in ("SRG1", "SRG2")]
        reply = flow.admin.post(
            f"/v2/runtime-groups/{crg['id']}/composite-memberships/add",
            json={"members": members},
        )
        assert reply.status_code == 204, reply.text
        yield flow
        flow.admin.close()


def test_composite_walkthrough_serves_both_members_config(
    walkthrough: Walkthrough,
) -> None:
    """Run the whole walkthrough: route from SRG1, basic-auth from SRG2, consumer."""
    flow = walkthrough
    with flow.start_node("CRG") as node, httpx.Client(base_url=node.proxy_url) as proxy:
        # A service and a route in SRG1 reach the composite's node.
        flow.form(
            flow.entities("SRG1") + "/services",
            name="example_service",
            url=flow.echo.url,
        )
        flow.form(
            flow.entities("SRG1") + "/services/example_service/routes",
            **{"paths[]": "/mock"},
        )
        wait_until(
            "the route from SRG1 serves",
            lambda: proxy.get("/mock/request/hello").status_code == 200,
        )
        echoed = proxy.get("/mock/request/hello").json()
        assert echoed["path"] == "/request/hello"
        assert echoed["method"] == "GET"

        # A global basic-auth plugin in SRG2 applies to SRG1's route.
        flow.form(flow.entities("SRG2") + "/plugins", name="basic-auth")
        wait_until(
            "basic-auth from SRG2 applies",
            lambda: proxy.get("/mock/request/hello").status_code == 401,
            seconds=1,
        )
        refused = proxy.get("/mock/request/hello")
        assert refused.json()["message"] == "Unauthorized"
        assert refused.headers["www-authenticate"] == 'Basic realm="service"'

        # A consumer and its credential, in the other member, are valid group-wide.
        flow.form(flow.entities("SRG1") + "/consumers", username="alice")
        flow.form(
            flow.entities("SRG1") + "/consumers/alice/basic-auth",
            username="alice",
            password="s3cret",
        )
        wait_until(
            "alice's credential is accepted",
            lambda: (
                proxy.get("/mock/request/hello", auth=("alice", "s3cret")).status_code
                == 200
            ),
        )
        echoed = proxy.get("/mock/request/hello", auth=("alice", "s3cret")).json()
        headers = {name.lower(): value for name, value in echoed["headers"].items()}
        assert headers["x-consumer-username"] == "alice"
        # The browser step: the same echo, as a page.
        page = proxy.get(
            "/mock/request/hello",
            auth=("alice", "s3cret"),
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        assert page.headers["content-type"].startswith("text/html")
        assert "/request/hello" in page.text
        assert proxy.get(
            "/mock/request/hello", auth=("alice", "wrong")
        ).status_code == (401)

        # A later change in SRG1 arrives while SRG2's plugin stays applied.
        flow.form(
            flow.entities("SRG1") + "/services/example_service/routes",
            name="other",
            **{"paths[]": "/other"},
        )
        wait_until(
            "the second route from SRG1 serves",
            lambda: proxy.get("/other/x").status_code == 401,
        )
        assert proxy.get("/other/x", auth=("alice", "s3cret")).status_code == 200


def test_nodes_api_shows_the_composite_node_in_sync(walkthrough: Walkthrough) -> None:
    flow = walkthrough
    crg = flow.groups["CRG"]["id"]
    with flow.start_node("CRG"):
        flow.form(flow.entities("SRG1") + "/consumers", username="bob")
        expected = flow.admin.get(f"/v2/runtime-groups/{crg}/expected-config-hash")
        assert expected.status_code == 200, expected.text

        def in_sync() -> bool:
            nodes = flow.admin.get(f"/v2/runtime-groups/{crg}/nodes").json()
            items = nodes.get("items", nodes.get("data", []))
            hashes = {node["config_hash"] for node in items}
            current = flow.admin.get(
                f"/v2/runtime-groups/{crg}/expected-config-hash"
            ).json()["expected_hash"]
            return hashes == {current}

        wait_until("the node reports the expected hash", in_sync)
