"""Composite memberships: the rules, the merge state and its preview."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.conftest import SPECS, deadline
from tests.control_plane.conftest import (
    assert_problem,
    create_composite,
    create_group,
    entities,
)
from tests.support.dataplane import start_data_plane
from tests.support.processes import ControlPlaneProcess


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
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(api.get(members_path(composite)).json())


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
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(api.get(path).json())


def version(api: httpx.Client, group: dict[str, Any]) -> int:
    path = f"/v2/runtime-groups/{group['id']}/expected-config-version"
    number: int = api.get(path).json()["expected_config_version"]
    return number


WRITES = [
    ("POST", "services", {"name": "s", "url": "http://up"}),
    ("POST", "consumers", {"username": "u"}),
    ("POST", "plugins", {"name": "cors"}),
    ("POST", "routes", {"paths": ["/r"]}),
    ("POST", "services/s/routes", {"paths": ["/r"]}),
    ("POST", "services/s/plugins", {"name": "cors"}),
    ("POST", "routes/r/plugins", {"name": "cors"}),
    ("POST", "consumers/u/plugins", {"name": "rate-limiting"}),
    ("POST", "consumers/u/basic-auth", {"username": "u", "password": "p"}),
    ("POST", "consumers/u/key-auth", {}),
    ("POST", "consumers/u/acls", {"group": "g"}),
    ("PUT", "services/s", {"url": "http://up"}),
    ("PUT", "consumers/u/acls/00000000-0000-4000-8000-000000000001", {"group": "g"}),
    ("PATCH", "services/s", {"retries": 1}),
    ("PATCH", "services/s/routes/r", {"paths": ["/x"]}),
    ("DELETE", "services/s", None),
    ("DELETE", "consumers/u/key-auth/k", None),
]


@pytest.mark.parametrize(("method", "path", "data"), WRITES)
@pytest.mark.parametrize("family", ["/v2/runtime-groups", "/v2/control-planes"])
def test_every_core_entity_write_on_a_composite_is_refused(
    api: httpx.Client,
    composite_with_entities: dict[str, Any],
    family: str,
    method: str,
    path: str,
    data: Any,
) -> None:
    base = f"{family}/{composite_with_entities['id']}/core-entities"
    before = version(api, composite_with_entities)
    for kwargs in ({"json": data}, {"data": data}):
        response = api.request(method, f"{base}/{path}", **kwargs)
        problem = assert_problem(response, 400, "id")
        assert "read-only" in problem["detail"]
        assert composite_with_entities["name"] in problem["detail"]
    assert version(api, composite_with_entities) == before


@pytest.fixture(scope="module")
def composite_with_entities(cp: ControlPlaneProcess) -> dict[str, Any]:
    """Return a composite whose member holds a service, route and consumer."""
    with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
        member = create_group(api)
        add_service(api, member, "s")
        for path, data in (
            ("services/s/routes", {"name": "r", "paths": ["/r"]}),
            ("consumers", {"username": "u"}),
            ("consumers/u/key-auth", {"key": "k"}),
        ):
            response = api.post(f"{entities(member)}/{path}", json=data)
            assert response.status_code == 201, response.text
        return create_composite(api, member)


def test_composite_reads_its_members_entities_by_name(
    api: httpx.Client, composite_with_entities: dict[str, Any]
) -> None:
    base = entities(composite_with_entities)
    assert api.get(f"{base}/services/s").json()["name"] == "s"
    assert [r["name"] for r in api.get(f"{base}/services/s/routes").json()["data"]] == [
        "r"
    ]


def test_a_refused_batch_adds_no_member(api: httpx.Client) -> None:
    good, composite = create_group(api), create_composite(api)
    nested = create_composite(api)
    response = api.post(members_path(composite, "add"), json=body(good, nested))
    problem = assert_problem(response, 400, "members")
    assert nested["id"] in problem["detail"] and good["id"] not in problem["detail"]
    assert api.get(members_path(composite)).json()["data"] == []


def test_a_member_write_bumps_the_member_and_every_composite_holding_it(
    api: httpx.Client,
) -> None:
    member = create_group(api)
    first, second = create_composite(api, member), create_composite(api, member)
    before = [version(api, g) for g in (member, first, second)]
    add_service(api, member, "bump")
    assert [version(api, g) for g in (member, first, second)] == [v + 1 for v in before]


def test_adding_a_present_member_again_changes_no_version(api: httpx.Client) -> None:
    member = create_group(api)
    composite = create_composite(api, member)
    before = version(api, composite)
    assert (
        api.post(members_path(composite, "add"), json=body(member)).status_code == 204
    )
    assert version(api, composite) == before


def test_membership_changes_bump_the_composite_version(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api)
    steps = [
        ("POST", members_path(composite, "add"), body(one)),
        ("PUT", members_path(composite), body(two)),
        ("POST", members_path(composite, "remove"), body(two)),
    ]
    for method, path, data in steps:
        before = version(api, composite)
        assert api.request(method, path, json=data).status_code == 204
        assert version(api, composite) == before + 1


def test_dry_run_needs_a_boolean(api: httpx.Client) -> None:
    response = api.post(
        members_path(create_composite(api), "add"),
        params={"dry_run": "maybe"},
        json=body(create_group(api)),
    )
    assert_problem(response, 400, "dry_run")


def test_dry_run_of_put_shows_the_conflicts_it_would_cause(api: httpx.Client) -> None:
    one, two = create_group(api), create_group(api)
    clashing = add_service(api, one, "dup")
    add_service(api, two, "dup")
    composite = create_composite(api, one)
    response = api.put(
        members_path(composite), params={"dry_run": "true"}, json=body(one, two)
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["state"] == "COMPOSITE_STATE_CONFLICT" and preview["dry_run"]
    assert {
        "cluster_id": one["id"],
        "description": f"conflicting entity found: ID={clashing['id']}, Name=dup",
        "resource": {"id": clashing["id"], "type": "service"},
    } in preview["conflicts"]
    status = api.get(f"/v2/runtime-groups/{composite['id']}/composite-status").json()
    assert status["state"] == "COMPOSITE_STATE_OK"


def test_removing_a_group_that_is_no_member_is_refused(api: httpx.Client) -> None:
    stranger = create_group(api)
    response = api.post(
        members_path(create_composite(api), "remove"), json=body(stranger)
    )
    assert stranger["id"] in assert_problem(response, 400, "members")["detail"]


def test_members_are_removed_from_a_form_body(api: httpx.Client) -> None:
    member = create_group(api)
    composite = create_composite(api, member)
    response = api.post(
        members_path(composite, "remove"), data={"members[].id": member["id"]}
    )
    assert response.status_code == 204, response.text
    assert api.get(members_path(composite)).json()["data"] == []


def test_deleting_a_member_names_every_composite_holding_it(
    api: httpx.Client,
) -> None:
    member = create_group(api)
    holders = [create_composite(api, member) for _ in range(2)]
    problem = assert_problem(api.delete(f"/v2/runtime-groups/{member['id']}"), 409)
    for composite in holders:
        assert composite["id"] in problem["detail"]
        assert composite["name"] in problem["detail"]
    for composite in holders:
        api.post(members_path(composite, "remove"), json=body(member))
    assert api.delete(f"/v2/runtime-groups/{member['id']}").status_code == 204


def test_unknown_member_field_is_refused(api: httpx.Client) -> None:
    member = create_group(api)
    response = api.post(
        members_path(create_composite(api), "add"),
        json={"members": [{"id": member["id"], "name": "x"}]},
    )
    assert_problem(response, 400, "members[0].name")


def test_concurrent_joins_keep_a_group_in_at_most_5_composites(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    member = create_group(api)
    composites = [create_composite(api) for _ in range(8)]

    def join(composite: dict[str, Any]) -> int:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as client:
            return client.post(
                members_path(composite, "add"), json=body(member)
            ).status_code

    with ThreadPoolExecutor(len(composites)) as pool:
        codes = list(pool.map(join, composites))
    assert sorted(codes) == [204] * 5 + [400] * 3
    holding = [c for c in composites if api.get(members_path(c)).json()["data"] != []]
    assert len(holding) == 5


def test_concurrent_adds_keep_a_composite_at_256_members(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    composite = create_composite(api)
    groups = [create_group(api, "many") for _ in range(266)]
    for start in range(0, 250, 50):
        batch = body(*groups[start : start + 50])
        assert api.post(members_path(composite, "add"), json=batch).status_code == 204
    # Two batches of 4 fit below the limit one after the other only once.
    batches = [groups[250:254], groups[254:258], groups[258:262], groups[262:266]]

    def add(batch: list[dict[str, Any]]) -> int:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as client:
            return client.post(
                members_path(composite, "add"), json=body(*batch)
            ).status_code

    with ThreadPoolExecutor(len(batches)) as pool:
        codes = list(pool.map(add, batches))
    assert sorted(codes) == [204, 400, 400, 400]
    listed = api.get(members_path(composite), params={"page[size]": 1000}).json()
    assert listed["meta"]["page"]["total"] == 254
    joined = {g["id"] for g in listed["data"]}
    outsiders = [g for g in groups if g["id"] not in joined][:3]
    refused = api.post(members_path(composite, "add"), json=body(*outsiders))
    assert "256" in assert_problem(refused, 400, "members")["detail"]


def wait_for(what: str, check: Callable[[], bool], seconds: float = 10) -> None:
    """Poll `check` until it holds, failing with `what` after the deadline."""
    end = time.monotonic() + deadline(seconds)
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not seen within {seconds} s")


@pytest.mark.slow
def test_group_with_a_connected_node_cannot_join_until_it_leaves(
    api: httpx.Client, cp: ControlPlaneProcess, tmp_path: Path
) -> None:
    member = create_group(api)
    reply = api.post(
        f"/v2/runtime-groups/{member['id']}/dp-client-certificates/generate", json={}
    )
    assert reply.status_code == 201, reply.text
    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    cert.write_text(reply.json()["item"]["cert"])
    key.write_text(reply.json()["private_key"])
    composite = create_composite(api)
    nodes = f"/v2/runtime-groups/{member['id']}/nodes"

    def connected() -> bool:
        return any(n["connected"] for n in api.get(nodes).json()["items"])

    with start_data_plane(
        tmp_path,
        control_plane=member["config"]["control_plane_endpoint"],
        cert=cert,
        key=key,
        ca=cp.prefix / "cluster.crt",
        wait_ready=True,
    ):
        wait_for("the node connected", connected)
        response = api.post(members_path(composite, "add"), json=body(member))
        problem = assert_problem(response, 400, "members")
        assert member["id"] in problem["detail"] and "connected" in problem["detail"]
    wait_for("the node gone", lambda: not connected())
    assert (
        api.post(members_path(composite, "add"), json=body(member)).status_code == 204
    )
