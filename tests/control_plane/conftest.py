"""A control plane process per test module, and clients that talk to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import ControlPlaneProcess, start_control_plane


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with start_control_plane(tmp_path_factory.mktemp("cp")) as process:
        yield process


@pytest.fixture
def api(cp: ControlPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cp.admin_url, headers=cp.headers, timeout=30) as client:
        yield client


def unique(name: str) -> str:
    """Return `name` with a suffix, so that tests sharing a CP never collide."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def create_group(
    api: httpx.Client,
    name: str = "group",
    cluster_type: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Create a runtime group and return it."""
    body: dict[str, Any] = {"name": unique(name), **extra}
    if cluster_type is not None:
        body["cluster_type"] = cluster_type
    response = api.post("/v2/runtime-groups", json=body)
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    return group


def create_composite(api: httpx.Client, *members: dict[str, Any]) -> dict[str, Any]:
    """Create a composite group holding `members`."""
    composite = create_group(api, "composite", "CLUSTER_TYPE_COMPOSITE")
    if members:
        response = api.post(
            f"/v2/runtime-groups/{composite['id']}/composite-memberships/add",
            json={"members": [{"id": m["id"]} for m in members]},
        )
        assert response.status_code == 204, response.text
    return composite


def entities(group: dict[str, Any]) -> str:
    """Return the core-entities base path of a group."""
    return f"/v2/runtime-groups/{group['id']}/core-entities"


def assert_problem(
    response: httpx.Response, status: int, *fields: str
) -> dict[str, Any]:
    """Check a problem+json refusal, naming `fields` among its parameters."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for key in ("title", "detail", "instance"):
        assert isinstance(body[key], str) and body[key]
    if status == 400:
        named = {p["field"] for p in body["invalid_parameters"]}
        for field in fields:
            assert field in named, (field, body)
    return body
