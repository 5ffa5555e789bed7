"""Tokens and roles: organisation admin, runtime group admin, viewer."""

from __future__ import annotations

from typing import Any

import httpx

from tests.control_plane.conftest import (
    assert_problem,
    create_composite,
    create_group,
    entities,
)
from tests.support.processes import ControlPlaneProcess


def token(
    api: httpx.Client, role: str, groups: list[str] | None = None
) -> dict[str, Any]:
    body = {"name": f"{role} token", "role": role, "groups": groups or []}
    response = api.post("/v2/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def client(cp: ControlPlaneProcess, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=cp.admin_url, headers={"Authorization": f"Bearer {secret}"}
    )


def test_created_token_is_personal_and_shown_once(api: httpx.Client) -> None:
    created = token(api, "viewer")
    assert created["token"].startswith("kpat_")
    listed = api.get("/v2/tokens").json()["data"]
    record = next(t for t in listed if t["id"] == created["id"])
    assert "token" not in record and "digest" not in record


def test_system_token_starts_with_spat(api: httpx.Client) -> None:
    body = {"name": "robot", "role": "viewer", "kind": "system"}
    assert api.post("/v2/tokens", json=body).json()["token"].startswith("spat_")


def test_viewer_reads_but_cannot_write(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    with client(cp, token(api, "viewer")["token"]) as viewer:
        assert viewer.get("/v2/runtime-groups").status_code == 200
        assert_problem(viewer.post("/v2/runtime-groups", json={"name": "v"}), 403)


def test_group_admin_writes_only_its_groups(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    mine, other = create_group(api), create_group(api)
    secret = token(api, "runtime_group_admin", [mine["name"]])["token"]
    service = {"name": "s", "url": "http://up"}
    with client(cp, secret) as admin:
        assert admin.post(f"{entities(mine)}/services", json=service).status_code == 201
        assert_problem(admin.post(f"{entities(other)}/services", json=service), 403)


def test_group_admin_manages_a_composite_of_its_groups(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    one, two = create_group(api), create_group(api)
    composite = create_composite(api, one)
    secret = token(api, "runtime_group_admin", [one["id"], two["id"]])["token"]
    path = f"/v2/runtime-groups/{composite['id']}/composite-memberships/add"
    with client(cp, secret) as admin:
        response = admin.post(path, json={"members": [{"id": two["id"]}]})
        assert response.status_code == 204, response.text


def test_revoked_token_is_refused_at_once(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    created = token(api, "viewer")
    with client(cp, created["token"]) as viewer:
        assert viewer.get("/v2/runtime-groups").status_code == 200
        assert api.delete(f"/v2/tokens/{created['id']}").status_code == 204
        assert_problem(viewer.get("/v2/runtime-groups"), 401)


def test_only_organization_admins_manage_tokens(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    with client(cp, token(api, "viewer")["token"]) as viewer:
        assert_problem(viewer.get("/v2/tokens"), 403)


def test_group_admin_token_needs_groups(api: httpx.Client) -> None:
    response = api.post("/v2/tokens", json={"name": "x", "role": "runtime_group_admin"})
    assert_problem(response, 400, "groups")


def test_current_token_tells_who_the_caller_is(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    group = create_group(api)
    created = token(api, "runtime_group_admin", [group["name"]])
    with client(cp, created["token"]) as caller:
        me = caller.get("/v2/tokens/current")
    assert me.status_code == 200, me.text
    assert me.json() == {k: created[k] for k in me.json()}
    assert (me.json()["role"], me.json()["groups"]) == (
        "runtime_group_admin",
        [group["id"]],
    )
    assert "token" not in me.json() and "digest" not in me.json()
    assert api.get("/v2/tokens/current").json()["role"] == "organization_admin"


def test_current_token_needs_a_token(cp: ControlPlaneProcess) -> None:
    assert_problem(httpx.get(cp.admin_url + "/v2/tokens/current"), 401)


def test_viewer_cannot_change_entities_or_memberships(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    group, composite = create_group(api), create_composite(api)
    with client(cp, token(api, "viewer")["token"]) as viewer:
        assert viewer.get(f"{entities(group)}/services").status_code == 200
        refused = [
            viewer.post(f"{entities(group)}/services", json={"url": "http://up"}),
            viewer.patch(f"/v2/runtime-groups/{group['id']}", json={"description": ""}),
            viewer.delete(f"/v2/runtime-groups/{group['id']}"),
            viewer.post(
                f"/v2/runtime-groups/{composite['id']}/composite-memberships/add",
                json={"members": [{"id": group["id"]}]},
            ),
        ]
    for response in refused:
        assert "viewer" in assert_problem(response, 403)["detail"]


def test_group_admin_cannot_create_groups_or_manage_tokens(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    group = create_group(api)
    secret = token(api, "runtime_group_admin", [group["id"]])["token"]
    with client(cp, secret) as admin:
        assert_problem(admin.post("/v2/runtime-groups", json={"name": "mine"}), 403)
        assert_problem(admin.post("/v2/tokens", json={"name": "x"}), 403)
        assert admin.get("/v2/runtime-groups").status_code == 200


def test_group_admin_cannot_touch_a_composite_with_a_foreign_member(
    api: httpx.Client, cp: ControlPlaneProcess
) -> None:
    mine, foreign = create_group(api), create_group(api)
    composite = create_composite(api, foreign)
    secret = token(api, "runtime_group_admin", [mine["id"]])["token"]
    path = f"/v2/runtime-groups/{composite['id']}/composite-memberships/add"
    with client(cp, secret) as admin:
        response = admin.post(path, json={"members": [{"id": mine["id"]}]})
        assert foreign["id"] in assert_problem(response, 403)["detail"]
        other = create_composite(api)
        alone = admin.post(
            f"/v2/runtime-groups/{other['id']}/composite-memberships/add",
            json={"members": [{"id": foreign["id"]}]},
        )
        assert_problem(alone, 403)


def test_a_token_cannot_revoke_itself(api: httpx.Client) -> None:
    me = api.get("/v2/tokens/current").json()
    assert_problem(api.delete(f"/v2/tokens/{me['id']}"), 409)


def test_token_for_an_unknown_group_is_refused(api: httpx.Client) -> None:
    body = {"name": "x", "role": "runtime_group_admin", "groups": ["no-such-group"]}
    assert_problem(api.post("/v2/tokens", json=body), 400, "groups")
