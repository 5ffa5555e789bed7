"""Composite memberships: the rules, the merge state and its preview."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import yaml

from tests.control_plane.conftest import (
    SPECS,
    assert_problem,
    create_composite,
    create_group,
    entities,
)


def members_path(composite: dict[str, Any], action: str = "") -> str:
    suffix = f"/{action}" if action else ""
    return f"/v2/runtime-groups/{composite['id']}/composite-memberships{suffix}"


def body(*groups: dict[str, Any]) -> dict[str, Any]:
    return {"members": [{"id": g["id"]} for g in groups]}


def add_service(api: httpx.Client, group: dict[str, Any], name: str) -> dict[str, Any]:
    response = api.post(
        f"{entities(group)}/services", json={"name": name, "url": "http://up:80"}
    )
    assert response.status_code == 201, response.text
    service: dict[str, Any] = response.json()
    return service


def test_added_members_are_listed(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    listed = api.get(members_path(composite)).json()
    assert [g["id"] for g in listed["data"]] == [one["id"], two["id"]]
    assert listed["meta"]["page"]["total"] == 2


def test_member_list_matches_the_spec(api: httpx.Client) -> None:
    spec: dict[str, Any] = yaml.safe_load(
        (SPECS / "konnect-runtime-groups-v2.yaml").read_text()
    )
    composite = create_composite(api, create_group(api))
    response = spec["components"]["responses"]["ListCompositeMemberships"]
    schema = {**spec, **response["content"]["application/json"]["schema"]}
    jsonschema.Draft202012Validator(schema).validate(
        api.get(members_path(composite)).json()
    )


def test_member_status_says_whether_a_group_is_a_member(api: httpx.Client) -> None:
    member, loner = create_group(api), create_group(api)
    create_composite(api, member)
    status = f"/v2/runtime-groups/{member['id']}/composite-member-status"
    assert api.get(status).json() == {"is_member": True}
    other = f"/v2/runtime-groups/{loner['id']}/composite-member-status"
    assert api.get(other).json() == {"is_member": False}


def test_removed_member_is_no_longer_listed(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    assert (
        api.post(members_path(composite, "remove"), json=body(one)).status_code == 204
    )
    assert [g["id"] for g in api.get(members_path(composite)).json()["data"]] == [
        two["id"]
    ]


def test_put_replaces_the_member_set(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one)
    assert api.put(members_path(composite), json=body(two)).status_code == 204
    assert [g["id"] for g in api.get(members_path(composite)).json()["data"]] == [
        two["id"]
    ]


def test_only_composites_have_members(api: httpx.Client) -> None:
    standard, other = create_group(api), create_group(api)
    response = api.post(members_path(standard, "add"), json=body(other))
    assert_problem(response, 400, "id")


def test_composite_cannot_be_a_member(api: httpx.Client) -> None:
    inner = create_composite(api)
    outer = create_composite(api)
    response = api.post(members_path(outer, "add"), json=body(inner))
    problem = assert_problem(response, 400, "members")
    assert inner["id"] in problem["detail"]


def test_kubernetes_ingress_group_cannot_be_a_member(api: httpx.Client) -> None:
    kic = create_group(api, "kic", "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER")
    response = api.post(members_path(create_composite(api), "add"), json=body(kic))
    assert kic["id"] in assert_problem(response, 400, "members")["detail"]


def test_more_than_50_members_in_one_call_is_refused(api: httpx.Client) -> None:
    ids = {"members": [{"id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(51)]}
    response = api.post(members_path(create_composite(api), "add"), json=ids)
    assert_problem(response, 400, "members")


def test_a_group_joins_at_most_5_composites(api: httpx.Client) -> None:
    member = create_group(api)
    for _ in range(5):
        create_composite(api, member)
    sixth = create_composite(api)
    response = api.post(members_path(sixth, "add"), json=body(member))
    assert member["id"] in assert_problem(response, 400, "members")["detail"]


def test_unknown_member_is_refused_with_404(api: httpx.Client) -> None:
    missing = {"members": [{"id": "00000000-0000-4000-8000-000000000000"}]}
    response = api.post(members_path(create_composite(api), "add"), json=missing)
    assert_problem(response, 404)


def test_duplicated_id_key_in_a_member_is_refused(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    raw = '{"members": [{"id": "' + one["id"] + '", "id": "' + two["id"] + '"}]}'
    response = api.post(
        members_path(create_composite(api), "add"),
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "members[0].id")


def test_member_of_a_composite_cannot_be_deleted(api: httpx.Client) -> None:
    member = create_group(api)
    composite = create_composite(api, member)
    problem = assert_problem(api.delete(f"/v2/runtime-groups/{member['id']}"), 409)
    assert composite["id"] in problem["detail"]


def test_composite_is_read_only(api: httpx.Client) -> None:
    composite = create_composite(api, create_group(api))
    response = api.post(
        f"{entities(composite)}/services", json={"name": "s", "url": "http://up"}
    )
    assert "read-only" in assert_problem(response, 400)["detail"]


def test_composite_lists_the_merged_entities_of_its_members(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    add_service(api, one, "from-one")
    add_service(api, two, "from-two")
    names = {
        s["name"] for s in api.get(f"{entities(composite)}/services").json()["data"]
    }
    assert names == {"from-one", "from-two"}


def test_same_service_name_in_two_members_is_a_conflict(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    add_service(api, one, "clash")
    clashing = add_service(api, two, "clash")
    status = api.get(f"/v2/runtime-groups/{composite['id']}/composite-status").json()
    assert status["state"] == "COMPOSITE_STATE_CONFLICT"
    assert {
        "cluster_id": two["id"],
        "description": f"conflicting entity found: ID={clashing['id']}, Name=clash",
        "resource": {"id": clashing["id"], "type": "service"},
    } in status["conflicts"]


def test_expected_hash_stays_while_the_composite_conflicts(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    add_service(api, one, "stable")
    path = f"/v2/runtime-groups/{composite['id']}/expected-config-hash"
    before = api.get(path).json()["expected_hash"]
    add_service(api, two, "stable")
    assert api.get(path).json()["expected_hash"] == before


def test_resolving_the_conflict_moves_the_expected_hash(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    add_service(api, one, "fixme")
    path = f"/v2/runtime-groups/{composite['id']}/expected-config-hash"
    before = api.get(path).json()["expected_hash"]
    add_service(api, two, "fixme")
    api.patch(f"{entities(two)}/services/fixme", json={"name": "fixed"})
    status = api.get(f"/v2/runtime-groups/{composite['id']}/composite-status").json()
    assert status["state"] == "COMPOSITE_STATE_OK"
    assert api.get(path).json()["expected_hash"] != before


def test_two_members_with_the_same_global_plugin_conflict(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one, two)
    for group in (one, two):
        api.post(f"{entities(group)}/plugins", json={"name": "cors"})
    status = api.get(f"/v2/control-planes/{composite['id']}/group-status").json()
    assert status["item"]["state"] == "CONFLICT"
    assert {c["resource"]["type"] for c in status["item"]["conflicts"]} == {"plugin"}


def test_dry_run_previews_conflicts_without_adding(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    add_service(api, one, "same")
    add_service(api, two, "same")
    composite = create_composite(api, one)
    response = api.post(
        members_path(composite, "add"), params={"dry_run": "true"}, json=body(two)
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "COMPOSITE_STATE_CONFLICT"
    assert len(api.get(members_path(composite)).json()["data"]) == 1


def test_control_planes_family_serves_group_memberships(api: httpx.Client) -> None:
    member = create_group(api)
    group = create_composite(api)
    path = f"/v2/control-planes/{group['id']}/group-memberships"
    assert api.post(path + "/add", json=body(member)).status_code == 204
    listed = api.get(path).json()
    assert [g["id"] for g in listed["data"]] == [member["id"]]
    assert listed["data"][0]["config"]["cluster_type"] == "CLUSTER_TYPE_CONTROL_PLANE"
    status = api.get(f"/v2/control-planes/{member['id']}/group-member-status").json()
    assert status == {"is_member": True}


def test_composite_status_of_a_standard_group_is_refused(api: httpx.Client) -> None:
    standard = create_group(api)
    response = api.get(f"/v2/runtime-groups/{standard['id']}/composite-status")
    assert_problem(response, 400, "id")


def test_dry_run_of_put_leaves_the_members_unchanged(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one)
    response = api.put(
        members_path(composite), params={"dry_run": "true"}, json=body(two)
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "COMPOSITE_STATE_OK"
    listed = api.get(members_path(composite)).json()["data"]
    assert [g["id"] for g in listed] == [one["id"]]


def test_members_are_added_from_a_form_body(api: httpx.Client) -> None:
    member = create_group(api)
    composite = create_composite(api)
    response = api.post(
        members_path(composite, "add"), data={"members[1].id": member["id"]}
    )
    assert response.status_code == 204, response.text


def test_status_and_member_status_match_the_spec(api: httpx.Client) -> None:
    spec: dict[str, Any] = yaml.safe_load(
        (SPECS / "konnect-runtime-groups-v2.yaml").read_text()
    )
    member = create_group(api)
    composite = create_composite(api, member)
    checks = (
        ("CompositeStatus", f"/v2/runtime-groups/{composite['id']}/composite-status"),
        (
            "CompositeMemberStatus",
            f"/v2/runtime-groups/{member['id']}/composite-member-status",
        ),
    )
    for name, path in checks:
        schema = {**spec, "$ref": f"#/components/schemas/{name}"}
        jsonschema.Draft202012Validator(schema).validate(api.get(path).json())
