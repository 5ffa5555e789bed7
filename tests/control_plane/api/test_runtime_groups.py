"""Runtime groups through the admin API, checked against Konnect's spec."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.control_plane.conftest import (
    SPECS,
    assert_problem,
    create_group,
    unique,
)
from tests.support.processes import ControlPlaneProcess


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = SPECS / "konnect-runtime-groups-v2.yaml"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def validate(spec: dict[str, Any], name: str, instance: Any) -> None:
    schema = {**spec, "$ref": f"#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


def validate_response(spec: dict[str, Any], name: str, instance: Any) -> None:
    content = spec["components"]["responses"][name]["content"]["application/json"]
    schema = {**spec, **content["schema"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_created_group_matches_the_runtime_group_schema(
    api: httpx.Client, spec: dict[str, Any]
) -> None:
    group = create_group(api, "srg", description="first", labels={"env": "prod"})
    validate(spec, "RuntimeGroup", group)
    assert group["config"]["cluster_type"] == "CLUSTER_TYPE_HYBRID"
    assert group["labels"] == {"env": "prod"}


def test_group_endpoints_are_distinct_on_the_cluster_and_telemetry_listeners(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    one, two = create_group(api), create_group(api)
    assert one["config"]["control_plane_endpoint"] == f"{cp.cluster_url}/cp/{one['id']}"
    assert one["config"]["telemetry_endpoint"] == f"{cp.telemetry_url}/tp/{one['id']}"
    assert (
        one["config"]["control_plane_endpoint"]
        != two["config"]["control_plane_endpoint"]
    )


def test_group_list_matches_the_list_schema(
    api: httpx.Client, spec: dict[str, Any]
) -> None:
    create_group(api)
    body = api.get("/v2/runtime-groups", params={"page[size]": 2}).json()
    validate_response(spec, "ListRuntimeGroupsResponse", body)
    assert body["meta"]["page"]["size"] == 2 and len(body["data"]) <= 2


def test_duplicate_name_is_refused_with_409(api: httpx.Client) -> None:
    name = unique("dup")
    assert api.post("/v2/runtime-groups", json={"name": name}).status_code == 201
    assert_problem(api.post("/v2/runtime-groups", json={"name": name}), 409)


def test_name_is_required(api: httpx.Client) -> None:
    assert_problem(api.post("/v2/runtime-groups", json={}), 400, "name")


def test_unknown_field_is_refused(api: httpx.Client) -> None:
    response = api.post("/v2/runtime-groups", json={"name": unique("x"), "colour": 1})
    assert_problem(response, 400, "colour")


def test_label_key_with_reserved_prefix_is_refused(api: httpx.Client) -> None:
    body = {"name": unique("x"), "labels": {"kong-env": "x"}}
    assert_problem(api.post("/v2/runtime-groups", json=body), 400, "labels.kong-env")


def test_label_value_breaking_the_pattern_is_refused(api: httpx.Client) -> None:
    body = {"name": unique("x"), "labels": {"env": "-bad-"}}
    assert_problem(api.post("/v2/runtime-groups", json=body), 400, "labels.env")


def test_group_is_created_from_a_form_body(api: httpx.Client) -> None:
    name = unique("form")
    response = api.post(
        "/v2/runtime-groups",
        data={
            "name": name,
            "cluster_type": "CLUSTER_TYPE_COMPOSITE",
            "labels.env": "dev",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["config"]["cluster_type"] == "CLUSTER_TYPE_COMPOSITE"
    assert response.json()["labels"] == {"env": "dev"}


def test_unsupported_cluster_type_is_refused(api: httpx.Client) -> None:
    body = {"name": unique("x"), "cluster_type": "CLUSTER_TYPE_SERVERLESS"}
    assert_problem(api.post("/v2/runtime-groups", json=body), 400, "cluster_type")


def test_cluster_type_cannot_change(api: httpx.Client) -> None:
    group = create_group(api)
    response = api.patch(
        f"/v2/runtime-groups/{group['id']}",
        json={"cluster_type": "CLUSTER_TYPE_COMPOSITE"},
    )
    assert_problem(response, 400, "cluster_type")


def test_patch_changes_name_and_labels(api: httpx.Client, spec: dict[str, Any]) -> None:
    group = create_group(api)
    name = unique("renamed")
    response = api.patch(
        f"/v2/runtime-groups/{group['id']}", json={"name": name, "labels": {"a": "b"}}
    )
    assert response.status_code == 200, response.text
    validate(spec, "RuntimeGroup", response.json())
    assert api.get(f"/v2/runtime-groups/{group['id']}").json()["name"] == name


def test_filter_by_name_contains_and_cluster_type(api: httpx.Client) -> None:
    marker = unique("needle")
    create_group(api, marker)
    create_group(api, marker, "CLUSTER_TYPE_COMPOSITE")
    found = api.get(
        "/v2/runtime-groups",
        params={
            "filter[name][contains]": marker,
            "filter[cluster_type][eq]": "CLUSTER_TYPE_COMPOSITE",
        },
    ).json()
    assert found["meta"]["page"]["total"] == 1
    assert found["data"][0]["config"]["cluster_type"] == "CLUSTER_TYPE_COMPOSITE"


def test_filter_by_labels(api: httpx.Client) -> None:
    value = unique("v")
    group = create_group(api, labels={"team": value})
    found = api.get("/v2/runtime-groups", params={"labels": f"team:{value}"}).json()
    assert [g["id"] for g in found["data"]] == [group["id"]]


def test_page_number_walks_the_list(api: httpx.Client) -> None:
    marker = unique("page")
    made = [create_group(api, marker)["id"] for _ in range(3)]
    pages = [
        api.get(
            "/v2/runtime-groups",
            params={
                "filter[name][contains]": marker,
                "page[size]": 2,
                "page[number]": n,
            },
        ).json()
        for n in (1, 2)
    ]
    seen = [g["id"] for page in pages for g in page["data"]]
    assert seen == made
    assert pages[0]["meta"]["page"]["total"] == 3


def test_deleted_group_is_gone(api: httpx.Client) -> None:
    group = create_group(api)
    assert api.delete(f"/v2/runtime-groups/{group['id']}").status_code == 204
    assert_problem(api.get(f"/v2/runtime-groups/{group['id']}"), 404)


def test_control_planes_family_uses_its_own_cluster_type_names(
    api: httpx.Client,
) -> None:
    response = api.post(
        "/v2/control-planes",
        json={
            "name": unique("cpg"),
            "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP",
        },
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert group["config"]["cluster_type"] == "CLUSTER_TYPE_CONTROL_PLANE_GROUP"
    again = api.get(f"/v2/runtime-groups/{group['id']}").json()
    assert again["config"]["cluster_type"] == "CLUSTER_TYPE_COMPOSITE"


def test_control_plane_matches_the_control_planes_schema(api: httpx.Client) -> None:
    path = SPECS / "konnect-control-planes-v2.yaml"
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    group = api.post("/v2/control-planes", json={"name": unique("cp")}).json()
    validate(spec, "ControlPlane", group)
    assert group["config"]["cluster_type"] == "CLUSTER_TYPE_CONTROL_PLANE"


def test_renaming_to_a_taken_name_is_refused_with_409(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    response = api.patch(f"/v2/runtime-groups/{two['id']}", json={"name": one["name"]})
    assert_problem(response, 409)
