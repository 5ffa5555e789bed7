"""Errors, bodies and authentication shared by every endpoint."""

from __future__ import annotations

import httpx

from tests.control_plane.conftest import assert_problem, create_group, entities
from tests.support.processes import ControlPlaneProcess


def test_health_needs_no_token(cp: ControlPlaneProcess) -> None:
    response = httpx.get(cp.admin_url + "/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_call_without_token_is_401_problem(cp: ControlPlaneProcess) -> None:
    assert_problem(httpx.get(cp.admin_url + "/v2/runtime-groups"), 401)


def test_call_with_unknown_token_is_401(cp: ControlPlaneProcess) -> None:
    headers = {"Authorization": "Bearer kpat_unknown"}
    assert_problem(httpx.get(cp.admin_url + "/v2/runtime-groups", headers=headers), 401)


def test_malformed_json_is_400_not_500(api: httpx.Client) -> None:
    response = api.post(
        "/v2/runtime-groups",
        content=b'{"name": ',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400)


def test_duplicated_key_is_refused_naming_it(api: httpx.Client) -> None:
    response = api.post(
        "/v2/runtime-groups",
        content=b'{"name": "a", "name": "b"}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "name")


def test_json_array_body_is_refused(api: httpx.Client) -> None:
    response = api.post("/v2/runtime-groups", json=["x"])
    assert_problem(response, 400)


def test_unsupported_content_type_is_415(api: httpx.Client) -> None:
    response = api.post(
        "/v2/runtime-groups", content=b"name", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415)


def test_unknown_path_is_404_problem(api: httpx.Client) -> None:
    assert_problem(api.get("/v2/nothing-here"), 404)


def test_unknown_entity_collection_is_404(api: httpx.Client) -> None:
    assert_problem(api.get(f"{entities(create_group(api))}/upstreamz"), 404)


def test_wrong_method_is_405_problem(api: httpx.Client) -> None:
    assert_problem(api.put("/v2/runtime-groups"), 405)


def test_openapi_lists_the_served_endpoints(cp: ControlPlaneProcess) -> None:
    document = httpx.get(cp.admin_url + "/openapi.json").json()
    paths = document["paths"]
    assert "post" in paths["/v2/runtime-groups"]
    assert "get" in paths["/v2/control-planes/{group_id}/group-status"]
    assert "post" in paths["/v2/runtime-groups/{group_id}/composite-memberships/add"]
    item = "/v2/runtime-groups/{group_id}/core-entities/{collection}/{key}"
    assert set(paths[item]) == {"get", "put", "patch", "delete"}
