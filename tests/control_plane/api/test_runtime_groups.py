"""Runtime groups through the admin API, checked against Konnect's spec."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.conftest import SPECS
from tests.control_plane.conftest import (
    assert_problem,
    create_group,
    unique,
)
from tests.support.processes import ControlPlaneProcess


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = SPECS / "konnect-runtime-groups-v2.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def control_planes_spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (SPECS / "konnect-control-planes-v2.yaml").read_text()
    )
    return loaded


def validate(spec: dict[str, Any], name: str, instance: Any) -> None:
    schema = {**spec, "$ref": f"#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


def validate_response(spec: dict[str, Any], name: str, instance: Any) -> None:
    content = spec["components"]["responses"][name]["content"]["application/json"]
    schema = {**spec, **content["schema"]}
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


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


def iso(stamp: str) -> datetime:
    """Parse an ISO-8601 timestamp as Konnect writes it (UTC, `Z`)."""
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_timestamps_are_iso_8601_and_patch_moves_updated_at(
    api: httpx.Client,
) -> None:
    group = create_group(api)
    assert iso(group["created_at"]) == iso(group["updated_at"])
    changed = api.patch(
        f"/v2/runtime-groups/{group['id']}", json={"description": "later"}
    ).json()
    assert iso(changed["created_at"]) == iso(group["created_at"])
    assert iso(changed["updated_at"]) >= iso(group["updated_at"])
    assert changed["description"] == "later"


def test_filter_by_exact_name(api: httpx.Client) -> None:
    group = create_group(api, "exact")
    create_group(api, group["name"][:-1])
    for key in ("filter[name][eq]", "filter[name]"):
        found = api.get("/v2/runtime-groups", params={key: group["name"]}).json()
        assert [g["id"] for g in found["data"]] == [group["id"]]


def test_filter_by_label_key_alone_checks_existence(api: httpx.Client) -> None:
    key = "k" + unique("x").replace("-", "")[-8:]
    group = create_group(api, labels={key: "any"})
    create_group(api, labels={"other": "any"})
    found = api.get("/v2/runtime-groups", params={"labels": key}).json()
    assert [g["id"] for g in found["data"]] == [group["id"]]
    none = api.get("/v2/runtime-groups", params={"labels": f"{key}:else"}).json()
    assert none["data"] == []


def test_unknown_filter_is_refused(api: httpx.Client) -> None:
    response = api.get("/v2/runtime-groups", params={"filter[colour][eq]": "x"})
    assert_problem(response, 400, "filter[colour][eq]")


def test_all_three_cluster_types_can_be_created(api: httpx.Client) -> None:
    for cluster_type in (
        "CLUSTER_TYPE_HYBRID",
        "CLUSTER_TYPE_COMPOSITE",
        "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER",
    ):
        group = create_group(api, cluster_type=cluster_type)
        assert group["config"]["cluster_type"] == cluster_type


def test_a_refused_group_is_not_created(api: httpx.Client) -> None:
    name = unique("refused")
    body = {"name": name, "labels": {"ok": "fine", "kong-x": "bad"}}
    assert_problem(api.post("/v2/runtime-groups", json=body), 400, "labels.kong-x")
    found = api.get("/v2/runtime-groups", params={"filter[name][eq]": name}).json()
    assert found["data"] == []


def test_control_planes_list_matches_the_spec(api: httpx.Client) -> None:
    spec = control_planes_spec()
    create_group(api)
    body = api.get("/v2/control-planes", params={"page[size]": 3}).json()
    validate_response(spec, "ListControlPlanesResponse", body)


def test_group_memberships_and_statuses_match_the_control_planes_spec(
    api: httpx.Client,
) -> None:
    spec = control_planes_spec()
    one, two = create_group(api), create_group(api)
    group = api.post(
        "/v2/control-planes",
        json={
            "name": unique("cpg"),
            "cluster_type": "CLUSTER_TYPE_CONTROL_PLANE_GROUP",
        },
    ).json()
    base = f"/v2/control-planes/{group['id']}"
    members = {"members": [{"id": one["id"]}, {"id": two["id"]}]}
    assert api.post(f"{base}/group-memberships/add", json=members).status_code == 204
    for member in (one, two):
        api.post(
            f"/v2/control-planes/{member['id']}/core-entities/services",
            json={"name": "twice", "url": "http://up"},
        )
    listed = api.get(f"{base}/group-memberships", params={"page[size]": 1}).json()
    validate_response(spec, "ListGroupMemberships", listed)
    assert listed["meta"]["page"]["total"] == 2
    following = api.get(listed["meta"]["page"]["next"]).json()
    assert [g["id"] for g in listed["data"] + following["data"]] == [
        one["id"],
        two["id"],
    ]
    status = api.get(f"{base}/group-status").json()
    validate_response(spec, "GetGroupStatus", status)
    assert status["item"]["state"] == "CONFLICT" and status["item"]["conflicts"]
    member_status = api.get(f"/v2/control-planes/{one['id']}/group-member-status")
    validate_response(spec, "GetGroupMemberStatus", member_status.json())


def test_composite_status_with_conflicts_matches_the_spec(
    api: httpx.Client, spec: dict[str, Any]
) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_group(api, cluster_type="CLUSTER_TYPE_COMPOSITE")
    base = f"/v2/runtime-groups/{composite['id']}"
    members = {"members": [{"id": one["id"]}, {"id": two["id"]}]}
    assert (
        api.post(f"{base}/composite-memberships/add", json=members).status_code == 204
    )
    for member in (one, two):
        api.post(
            f"/v2/runtime-groups/{member['id']}/core-entities/consumers",
            json={"username": "same"},
        )
    status = api.get(f"{base}/composite-status").json()
    validate_response(spec, "GetCompositeStatus", status)
    assert status["state"] == "COMPOSITE_STATE_CONFLICT"
    conflicts = status["conflicts"]
    assert [c["cluster_id"] for c in conflicts] == [one["id"], two["id"]]
    assert {c["resource"]["type"] for c in conflicts} == {"consumer"}
    assert all(c["description"].endswith("Name=same") for c in conflicts)


def test_unknown_group_is_404_on_every_family(api: httpx.Client) -> None:
    missing = "00000000-0000-4000-8000-00000000abcd"
    for prefix in ("/v2/runtime-groups", "/v2/control-planes"):
        problem = assert_problem(api.get(f"{prefix}/{missing}"), 404)
        assert missing in problem["detail"]


def test_label_keys_and_counts_are_limited(api: httpx.Client) -> None:
    too_long = {"name": "labels", "labels": {"k" * 64: "v"}}
    assert_problem(api.post("/v2/runtime-groups", json=too_long), 400)
    crowded = {"name": "labels", "labels": {f"k{i}": "v" for i in range(51)}}
    assert_problem(api.post("/v2/runtime-groups", json=crowded), 400, "labels")


def test_auth_type_and_proxy_urls_are_kept(
    api: httpx.Client, spec: dict[str, Any]
) -> None:
    proxy_urls = [{"host": "gw.example", "port": 443, "protocol": "https"}]
    group = create_group(
        api, auth_type="pki_client_certs", proxy_urls=proxy_urls, cloud_gateway=False
    )
    validate(spec, "RuntimeGroup", group)
    assert group["config"]["auth_type"] == "pki_client_certs"
    assert group["config"]["proxy_urls"] == proxy_urls
    assert group["config"]["cloud_gateway"] is False
    bad = {"name": unique("x"), "proxy_urls": [{"host": "gw", "port": 0}]}
    assert_problem(api.post("/v2/runtime-groups", json=bad), 400, "proxy_urls[0]")
    cloud = {"name": unique("x"), "cloud_gateway": True}
    assert_problem(api.post("/v2/runtime-groups", json=cloud), 400, "cloud_gateway")
