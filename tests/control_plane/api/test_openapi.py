"""The control plane's own OpenAPI document covers every endpoint it serves."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import Match, Route

from control_plane.api.openapi import DOCUMENTED
from control_plane.app import build_routes
from tests.control_plane.conftest import create_group, entities
from tests.support.processes import ControlPlaneProcess

SAMPLE = "00000000-0000-4000-8000-000000000001"
PARAM = re.compile(r"{[a-z_]+}")


@pytest.fixture(scope="module")
def document(cp: ControlPlaneProcess) -> dict[str, Any]:
    response = httpx.get(cp.admin_url + "/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def api_routes() -> list[Route]:
    return [
        route
        for route in build_routes()
        if isinstance(route, Route) and route.path.startswith(DOCUMENTED)
    ]


def serving_route(path: str, method: str, routes: list[Route]) -> Route | None:
    """Return the route Starlette picks for a request, as its router does."""
    scope = {"type": "http", "path": path, "method": method.upper()}
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def test_every_route_of_the_app_is_in_the_document(document: dict[str, Any]) -> None:
    routes = api_routes()
    served: set[tuple[str, str]] = set()
    for path, item in document["paths"].items():
        concrete = PARAM.sub(SAMPLE, path)
        for method in item:
            route = serving_route(concrete, method, routes)
            assert route is not None, f"{method} {path} is documented, not served"
            served.add((route.path, method.upper()))
    missing = [
        f"{method} {route.path}"
        for route in routes
        for method in sorted(route.methods or ())
        if method != "HEAD" and (route.path, method) not in served
    ]
    assert missing == []


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(ids) == len(set(ids))


def test_every_documented_collection_lists(
    api: httpx.Client, document: dict[str, Any]
) -> None:
    group = create_group(api)
    for path, item in document["paths"].items():
        if "core-entities" not in path or "{parent_key}" in path or path.endswith("}"):
            continue
        concrete = path.replace("{group_id}", group["id"])
        assert api.get(concrete).status_code == 200, path
        assert "get" in item and "post" in item


def test_bodies_reference_the_entity_schemas(document: dict[str, Any]) -> None:
    services = document["paths"]["/v2/runtime-groups/{group_id}/core-entities/services"]
    body = services["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Service"
    }
    assert "application/x-www-form-urlencoded" in body
    schema = document["components"]["schemas"]["Service"]["properties"]
    assert schema["retries"]["default"] == 5
    assert schema["url"]["writeOnly"] is True
    plugin = document["components"]["schemas"]["Plugin.basic-auth"]["properties"]
    assert plugin["config"]["properties"]["hide_credentials"]["default"] is False


def test_list_parameters_are_documented(document: dict[str, Any]) -> None:
    listing = document["paths"]["/v2/runtime-groups"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"page[size]", "page[number]", "filter[name][eq]", "labels"} <= names
    add = document["paths"]["/v2/control-planes/{group_id}/group-memberships/add"]
    assert "dry_run" in {p["name"] for p in add["post"]["parameters"]}


def test_the_document_needs_no_token(cp: ControlPlaneProcess) -> None:
    assert httpx.get(cp.admin_url + "/v2/openapi.json").status_code == 200


def test_services_collection_is_documented_under_a_real_group(
    api: httpx.Client,
) -> None:
    assert api.get(f"{entities(create_group(api))}/services").status_code == 200
