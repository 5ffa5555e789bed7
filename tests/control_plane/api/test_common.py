"""Errors, bodies and authentication shared by every endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.control_plane.conftest import (
    assert_problem,
    create_group,
    entities,
    unique,
)
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


def test_lone_surrogate_escape_is_refused_not_500(api: httpx.Client) -> None:
    response = api.post(
        f"{entities(create_group(api))}/services",
        content=b'{"name": "\\ud800", "url": "http://up"}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "name")


def test_deeply_nested_json_is_refused(api: httpx.Client) -> None:
    body = '{"name": "deep", "url": "http://up", "tags": ' + "[" * 300 + "]" * 300 + "}"
    response = api.post(
        f"{entities(create_group(api))}/services",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400)


def test_deeply_nested_form_key_is_refused(api: httpx.Client) -> None:
    response = api.post(
        f"{entities(create_group(api))}/plugins",
        content=("config" + ".a" * 5000 + "=1").encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 400)


def test_form_body_that_is_not_utf8_names_the_body(api: httpx.Client) -> None:
    response = api.post(
        f"{entities(create_group(api))}/services",
        content=b"name=\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 400, "@body")


def test_wrongly_typed_enum_values_are_400_not_500(api: httpx.Client) -> None:
    for field in ("cluster_type", "auth_type"):
        response = api.post(
            "/v2/runtime-groups", json={"name": unique("typed"), field: {}}
        )
        assert_problem(response, 400, field)
    for field in ("role", "kind"):
        response = api.post("/v2/tokens", json={"name": "typed", field: []})
        assert_problem(response, 400, field)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v2/runtime-groups/{missing}", None, 404),
        ("PATCH", "/v2/runtime-groups/{group}", {"colour": "red"}, 400),
        ("POST", "/v2/runtime-groups", {"name": ""}, 400),
        ("GET", "/v2/runtime-groups?page[size]=5000", None, 400),
        ("POST", "/v2/runtime-groups/{group}/composite-memberships/add", {}, 400),
        ("GET", "/v2/runtime-groups/{group}/composite-status", None, 400),
        ("GET", "/v2/runtime-groups/{group}/core-entities/services/nope", None, 404),
        ("POST", "/v2/runtime-groups/{group}/core-entities/routes", {}, 400),
        ("POST", "/v2/runtime-groups/{group}/core-entities/plugins", {"x": 1}, 400),
        ("DELETE", "/v2/runtime-groups/{group}/core-entities/consumers/no", None, 404),
        ("GET", "/v2/runtime-groups/{group}/nodes/nope", None, 404),
        ("DELETE", "/v2/tokens/nope", None, 404),
        ("POST", "/v2/tokens", {"role": "king"}, 400),
    ],
)
def test_every_refusal_is_problem_json(
    api: httpx.Client, method: str, path: str, body: Any, status: int
) -> None:
    """Refusals from every resource family share the problem+json shape."""
    group = create_group(api)
    url = path.format(group=group["id"], missing="00000000-0000-4000-8000-0000000000ff")
    problem = assert_problem(api.request(method, url, json=body), status)
    assert problem["instance"].startswith("portico:trace:")
    if status == 400:
        assert problem["invalid_parameters"], problem
        for parameter in problem["invalid_parameters"]:
            assert set(parameter) == {"field", "rule", "reason"}


def test_refusal_for_a_missing_token_says_how_to_authenticate(
    cp: ControlPlaneProcess,
) -> None:
    response = httpx.post(cp.admin_url + "/v2/runtime-groups", json={"name": "x"})
    assert assert_problem(response, 401)["detail"].startswith("missing bearer token")
    assert response.headers["www-authenticate"] == "Bearer"
