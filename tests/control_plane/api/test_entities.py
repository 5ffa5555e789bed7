"""Core entities with Kong Admin API semantics, in both body encodings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.control_plane.conftest import assert_problem, create_group, entities


@pytest.fixture
def group(api: httpx.Client) -> dict[str, Any]:
    return create_group(api)


@pytest.fixture
def base(group: dict[str, Any]) -> str:
    return entities(group)


def post(api: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_service_url_shorthand_fills_protocol_host_port_path(
    api: httpx.Client, base: str
) -> None:
    service = post(
        api, f"{base}/services", name="svc", url="https://up.example:8443/v1"
    )
    assert (service["protocol"], service["host"], service["port"], service["path"]) == (
        "https",
        "up.example",
        8443,
        "/v1",
    )
    assert service["retries"] == 5 and service["read_timeout"] == 60000


def test_route_is_created_from_curl_form_data(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="mock", url="http://up")
    response = api.post(
        f"{base}/services/mock/routes",
        content="name=mock&paths[]=/mock&methods=GET&methods=POST",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    route = response.json()
    assert route["paths"] == ["/mock"] and route["methods"] == ["GET", "POST"]
    assert route["strip_path"] is True and route["protocols"] == ["http", "https"]


def test_plugin_config_from_dotted_form_keys(api: httpx.Client, base: str) -> None:
    response = api.post(
        f"{base}/plugins", data={"name": "basic-auth", "config.realm": "x"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["config"] == {
        "anonymous": None,
        "hide_credentials": False,
        "realm": "x",
    }


def test_entity_is_addressed_by_name_and_by_id(api: httpx.Client, base: str) -> None:
    service = post(api, f"{base}/services", name="by-name", url="http://up")
    assert api.get(f"{base}/services/by-name").json()["id"] == service["id"]
    assert api.get(f"{base}/services/{service['id']}").json()["name"] == "by-name"


def test_route_without_match_fields_is_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/routes", json={"name": "nothing"})
    assert_problem(response, 400)


def test_invalid_regex_path_is_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/routes", json={"paths": ["~/(unclosed"]})
    assert_problem(response, 400, "paths[0]")


def test_host_wildcard_in_the_middle_is_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/routes", json={"hosts": ["a.*.example.com"]})
    assert_problem(response, 400, "hosts[0]")


def test_unknown_plugin_is_refused_with_the_known_names(
    api: httpx.Client, base: str
) -> None:
    problem = assert_problem(
        api.post(f"{base}/plugins", json={"name": "nope"}), 400, "name"
    )
    reason = next(
        p["reason"] for p in problem["invalid_parameters"] if p["field"] == "name"
    )
    assert "basic-auth" in reason and "key-auth" in reason


def test_unknown_entity_field_is_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/services", json={"url": "http://up", "colour": "red"})
    assert_problem(response, 400, "colour")


def test_duplicate_service_name_is_refused_with_409(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/services", name="twice", url="http://up")
    response = api.post(f"{base}/services", json={"name": "twice", "url": "http://up"})
    assert_problem(response, 409)


def test_same_name_in_two_groups_is_allowed(api: httpx.Client) -> None:
    for _ in range(2):
        post(
            api,
            f"{entities(create_group(api))}/services",
            name="shared",
            url="http://u",
        )


def test_second_global_plugin_of_a_name_is_refused(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/plugins", name="cors")
    assert_problem(api.post(f"{base}/plugins", json={"name": "cors"}), 409)


def test_service_with_routes_cannot_be_deleted(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="held", url="http://up")
    post(api, f"{base}/services/held/routes", paths=["/held"])
    problem = assert_problem(api.delete(f"{base}/services/held"), 400)
    assert problem["detail"] == (
        "an existing 'routes' entity references this 'services' entity"
    )


def test_deleting_a_consumer_deletes_its_credentials(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/consumers", username="alice")
    credential = post(api, f"{base}/consumers/alice/key-auth")
    assert api.delete(f"{base}/consumers/alice").status_code == 204
    assert_problem(api.get(f"{base}/key-auths/{credential['id']}"), 404)


def test_basic_auth_password_is_never_returned(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/consumers", username="bob")
    created = post(
        api, f"{base}/consumers/bob/basic-auth", username="bob", password="pw"
    )
    assert "password" not in created
    listed = api.get(f"{base}/consumers/bob/basic-auth").json()["data"]
    assert all("password" not in c for c in listed)
    assert "pw" not in api.get(f"{base}/basic-auths/{created['id']}").text


def test_key_auth_key_is_generated_when_absent(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/consumers", username="carol")
    credential = post(api, f"{base}/consumers/carol/key-auth")
    assert len(credential["key"]) == 32


def test_nested_get_of_another_parents_entity_is_404(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/services", name="a", url="http://up")
    post(api, f"{base}/services", name="b", url="http://up")
    route = post(api, f"{base}/services/a/routes", paths=["/a"])
    assert_problem(api.get(f"{base}/services/b/routes/{route['id']}"), 404)


def test_patch_changes_only_the_given_fields(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="patched", url="http://up", retries=2)
    response = api.patch(f"{base}/services/patched", json={"read_timeout": 5})
    assert response.status_code == 200, response.text
    assert (response.json()["retries"], response.json()["read_timeout"]) == (2, 5)


def test_put_creates_then_replaces(api: httpx.Client, base: str) -> None:
    created = api.put(f"{base}/consumers/dave", json={"custom_id": "d1"})
    assert created.status_code == 201, created.text
    replaced = api.put(f"{base}/consumers/dave", json={"custom_id": "d2"})
    assert replaced.status_code == 200
    assert replaced.json()["id"] == created.json()["id"]
    assert replaced.json()["custom_id"] == "d2"


def test_list_pages_with_size_and_offset(api: httpx.Client, base: str) -> None:
    for i in range(5):
        post(api, f"{base}/consumers", username=f"user{i}")
    first = api.get(f"{base}/consumers", params={"size": 3}).json()
    assert len(first["data"]) == 3 and first["next"] and first["offset"]
    second = api.get(first["next"]).json()
    assert len(second["data"]) == 2 and second["next"] is None
    ids = [c["id"] for c in first["data"] + second["data"]]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_size_over_1000_is_refused(api: httpx.Client, base: str) -> None:
    assert_problem(api.get(f"{base}/services", params={"size": 1001}), 400, "size")


def test_tags_filter_and_or(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="t1", url="http://up", tags=["a", "b"])
    post(api, f"{base}/services", name="t2", url="http://up", tags=["b"])
    both = api.get(f"{base}/services", params={"tags": "a,b"}).json()["data"]
    either = api.get(f"{base}/services", params={"tags": "a/b"}).json()["data"]
    assert [s["name"] for s in both] == ["t1"]
    assert {s["name"] for s in either} == {"t1", "t2"}


def test_each_write_bumps_the_expected_version(
    api: httpx.Client, group: dict[str, Any]
) -> None:
    path = f"/v2/runtime-groups/{group['id']}/expected-config-version"
    before = api.get(path).json()["expected_config_version"]
    post(api, f"{entities(group)}/services", name="v", url="http://up")
    assert api.get(path).json()["expected_config_version"] == before + 1


def test_refused_write_changes_nothing(
    api: httpx.Client, group: dict[str, Any]
) -> None:
    path = f"/v2/runtime-groups/{group['id']}/expected-config-hash"
    before = api.get(path).json()
    api.post(f"{entities(group)}/routes", json={"paths": ["bad"]})
    assert api.get(path).json()["expected_hash"] == before["expected_hash"]
    assert api.get(f"{entities(group)}/routes").json()["data"] == []
