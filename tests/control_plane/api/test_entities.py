"""Core entities with Kong Admin API semantics, in both body encodings."""

from __future__ import annotations

import re
from datetime import datetime
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


def test_invalid_header_regex_is_refused(api: httpx.Client, base: str) -> None:
    body = {"headers": {"x-version": ["~*v(1"]}}
    assert_problem(api.post(f"{base}/routes", json=body), 400, "headers.x-version[0]")
    accepted = api.post(f"{base}/routes", json={"headers": {"x-version": ["~*v\\d"]}})
    assert accepted.status_code == 201, accepted.text


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


def test_put_by_name_keeps_the_name_from_the_url(api: httpx.Client, base: str) -> None:
    created = post(api, f"{base}/services", name="svc", url="http://a.test")
    replaced = api.put(f"{base}/services/svc", json={"url": "http://b.test"})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["id"], replaced.json()["name"]) == (created["id"], "svc")
    nested = api.put(f"{base}/services/svc/routes/r1", json={"paths": ["/r1"]})
    assert nested.status_code == 201, nested.text
    assert nested.json()["service"] == {"id": created["id"]}


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


def test_service_fields_are_stored_as_given(api: httpx.Client, base: str) -> None:
    given = {
        "name": "full",
        "protocol": "https",
        "host": "up.example",
        "port": 8443,
        "path": "/base",
        "retries": 3,
        "connect_timeout": 1000,
        "read_timeout": 2000,
        "write_timeout": 3000,
        "enabled": False,
        "tags": ["team-a", "prod"],
    }
    response = api.post(f"{base}/services", json=given)
    assert response.status_code == 201, response.text
    service = response.json()
    assert {k: service[k] for k in given} == given
    assert isinstance(service["created_at"], int)


def test_https_service_without_url_defaults_to_port_443(
    api: httpx.Client, base: str
) -> None:
    service = post(api, f"{base}/services", host="up.example", protocol="https")
    assert service["port"] == 443


def test_url_and_its_parts_together_are_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/services", json={"url": "http://up", "host": "other"})
    assert_problem(response, 400, "host")


def test_route_fields_are_stored_as_given(api: httpx.Client, base: str) -> None:
    service = post(api, f"{base}/services", name="target", url="http://up")
    given = {
        "name": "every-field",
        "protocols": ["https"],
        "methods": ["GET", "POST"],
        "hosts": ["*.example.com", "api.example.*"],
        "paths": ["/api", "~/items/(?<id>\\d+)$"],
        "headers": {"x-version": ["1", "2"]},
        "snis": ["api.example.com"],
        "strip_path": False,
        "preserve_host": True,
        "regex_priority": 7,
        "path_handling": "v1",
        "https_redirect_status_code": 308,
        "service": {"id": service["id"]},
        "tags": ["t"],
    }
    route = post(api, f"{base}/routes", **given)
    assert {k: route[k] for k in given} == given


def test_route_fields_are_typed_from_a_form(api: httpx.Client, base: str) -> None:
    response = api.post(
        f"{base}/routes",
        content=(
            "name=typed&paths[]=/t&strip_path=false&regex_priority=5"
            "&headers.x-env=prod&headers.x-env=dev&hosts=a.example&service="
        ),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    route = response.json()
    assert (route["strip_path"], route["regex_priority"]) == (False, 5)
    assert route["headers"] == {"x-env": ["prod", "dev"]}
    assert route["hosts"] == ["a.example"] and route["service"] is None


def test_unknown_form_field_is_refused(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/services", data={"url": "http://up", "colour": "r"})
    assert_problem(response, 400, "colour")


def test_duplicated_key_in_an_entity_body_is_refused(
    api: httpx.Client, base: str
) -> None:
    response = api.post(
        f"{base}/routes",
        content=b'{"paths": ["/a"], "headers": {"x": ["1"], "x": ["2"]}}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "headers.x")


def test_route_with_an_unknown_service_names_the_field(
    api: httpx.Client, base: str
) -> None:
    response = api.post(
        f"{base}/routes", json={"paths": ["/a"], "service": {"name": "ghost"}}
    )
    assert_problem(response, 400, "service")


def test_route_match_rules_follow_kong(api: httpx.Client, base: str) -> None:
    refused = {
        "hosts[0]": {"hosts": ["a.*.b.com"]},
        "paths[0]": {"paths": ["no-slash"]},
        "methods[0]": {"methods": ["get"]},
        "snis": {"hosts": ["a.example"], "snis": ["a.example"], "protocols": ["http"]},
        "headers.host": {"headers": {"host": ["a"]}},
        "protocols[0]": {"paths": ["/a"], "protocols": ["tcp"]},
    }
    for field, data in refused.items():
        assert_problem(api.post(f"{base}/routes", json=data), 400, field)
    for hosts in (["*.example.com"], ["example.*"], ["example.com:8080"]):
        assert api.post(f"{base}/routes", json={"hosts": hosts}).status_code == 201


def test_route_without_match_fields_says_which_fields(
    api: httpx.Client, base: str
) -> None:
    problem = assert_problem(
        api.post(f"{base}/routes", json={"protocols": ["http"]}), 400, "@entity"
    )
    assert "'methods', 'hosts', 'headers', 'paths'" in problem["detail"]


def test_route_names_are_unique_in_a_group(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/routes", name="once", paths=["/once"])
    response = api.post(f"{base}/routes", json={"name": "once", "paths": ["/b"]})
    assert "name" in assert_problem(response, 409)["detail"]


def test_plugins_nest_under_services_routes_and_consumers(
    api: httpx.Client, base: str
) -> None:
    service = post(api, f"{base}/services", name="papi", url="http://up")
    route = post(api, f"{base}/services/papi/routes", name="proute", paths=["/p"])
    consumer = post(api, f"{base}/consumers", username="pcons")
    scoped = {
        "services/papi/plugins": ("service", service["id"], {"name": "cors"}),
        "routes/proute/plugins": ("route", route["id"], {"name": "key-auth"}),
        "consumers/pcons/plugins": (
            "consumer",
            consumer["id"],
            {"name": "rate-limiting", "config": {"minute": 5}},
        ),
    }
    for path, (field, parent_id, data) in scoped.items():
        plugin = post(api, f"{base}/{path}", **data)
        assert plugin[field] == {"id": parent_id}
        listed = api.get(f"{base}/{path}").json()["data"]
        assert [p["id"] for p in listed] == [plugin["id"]]
    everything = api.get(f"{base}/plugins").json()["data"]
    assert len(everything) == 3


def test_plugin_config_defaults_are_filled(api: httpx.Client, base: str) -> None:
    plugin = post(api, f"{base}/plugins", name="key-auth")
    assert plugin["config"]["key_names"] == ["apikey"]
    assert plugin["config"]["hide_credentials"] is False
    assert plugin["enabled"] is True and plugin["protocols"]


def test_plugin_config_is_checked_against_its_schema(
    api: httpx.Client, base: str
) -> None:
    response = api.post(
        f"{base}/plugins", json={"name": "rate-limiting", "config": {"minute": "x"}}
    )
    assert_problem(response, 400, "config.minute")


def test_a_request_transformer_template_is_checked(
    api: httpx.Client, base: str
) -> None:
    config = {"add": {"headers": ["X-A:$(headers.a .. 'b')"]}}
    response = api.post(
        f"{base}/plugins", json={"name": "request-transformer", "config": config}
    )
    assert_problem(response, 400, "config.add.headers[0]")


def test_plugin_instance_names_are_unique(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="inst", url="http://up")
    post(api, f"{base}/plugins", name="cors", instance_name="shared-cors")
    response = api.post(
        f"{base}/services/inst/plugins",
        json={"name": "cors", "instance_name": "shared-cors"},
    )
    assert "instance_name" in assert_problem(response, 409)["detail"]


def test_patch_of_a_plugin_config_keeps_the_other_fields(
    api: httpx.Client, base: str
) -> None:
    plugin = post(
        api, f"{base}/plugins", name="basic-auth", config={"hide_credentials": True}
    )
    response = api.patch(
        f"{base}/plugins/{plugin['id']}", json={"config": {"realm": "r"}}
    )
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert (config["realm"], config["hide_credentials"]) == ("r", True)


def test_consumer_needs_a_username_or_custom_id(api: httpx.Client, base: str) -> None:
    assert_problem(api.post(f"{base}/consumers", json={"tags": ["x"]}), 400, "@entity")
    consumer = post(api, f"{base}/consumers", custom_id="only-custom")
    assert consumer["username"] is None


def test_consumer_custom_ids_are_unique(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/consumers", username="c1", custom_id="same")
    response = api.post(
        f"{base}/consumers", json={"username": "c2", "custom_id": "same"}
    )
    assert "custom_id" in assert_problem(response, 409)["detail"]


def test_credentials_are_addressed_by_username_and_key(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/consumers", username="erin")
    basic = post(
        api, f"{base}/consumers/erin/basic-auth", username="erin-b", password="x"
    )
    keyed = post(api, f"{base}/consumers/erin/key-auth", key="erin-key")
    assert api.get(f"{base}/basic-auths/erin-b").json()["id"] == basic["id"]
    assert (
        api.get(f"{base}/consumers/erin/key-auth/erin-key").json()["id"] == keyed["id"]
    )
    assert api.get(f"{base}/key-auths/erin-key").json()["key"] == "erin-key"


def test_credential_keys_and_usernames_are_unique(api: httpx.Client, base: str) -> None:
    for name in ("k1", "k2"):
        post(api, f"{base}/consumers", username=name)
    post(api, f"{base}/consumers/k1/key-auth", key="taken")
    post(api, f"{base}/consumers/k1/basic-auth", username="login", password="p")
    assert_problem(
        api.post(f"{base}/consumers/k2/key-auth", json={"key": "taken"}), 409
    )
    assert_problem(
        api.post(
            f"{base}/consumers/k2/basic-auth",
            json={"username": "login", "password": "q"},
        ),
        409,
    )


def test_acls_are_listed_per_consumer_and_unique_per_group_name(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/consumers", username="frank")
    acl = post(api, f"{base}/consumers/frank/acls", group="admins")
    assert_problem(
        api.post(f"{base}/consumers/frank/acls", json={"group": "admins"}), 409
    )
    listed = api.get(f"{base}/consumers/frank/acls").json()["data"]
    assert [a["id"] for a in listed] == [acl["id"]]
    consumer = api.get(f"{base}/consumers/frank").json()
    assert acl["consumer"] == {"id": consumer["id"]}


def test_deleting_a_consumer_cascades_to_every_credential_and_plugin(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/consumers", username="gone")
    made = [
        (
            "basic-auths",
            post(api, f"{base}/consumers/gone/basic-auth", username="g", password="p"),
        ),
        ("acls", post(api, f"{base}/consumers/gone/acls", group="g")),
        ("key-auths", post(api, f"{base}/consumers/gone/key-auth")),
        (
            "plugins",
            post(api, f"{base}/consumers/gone/plugins", name="request-termination"),
        ),
    ]
    assert api.delete(f"{base}/consumers/gone").status_code == 204
    for collection, entity in made:
        assert_problem(api.get(f"{base}/{collection}/{entity['id']}"), 404)


def test_deleting_a_route_deletes_its_plugins(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/routes", name="short-lived", paths=["/s"])
    plugin = post(api, f"{base}/routes/short-lived/plugins", name="cors")
    assert api.delete(f"{base}/routes/short-lived").status_code == 204
    assert_problem(api.get(f"{base}/plugins/{plugin['id']}"), 404)


def test_deleting_a_service_with_routes_keeps_everything(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/services", name="kept", url="http://up")
    route = post(api, f"{base}/services/kept/routes", paths=["/k"])
    problem = assert_problem(api.delete(f"{base}/services/kept"), 400, "@referenced_by")
    assert problem["name"] == "foreign key violation"
    assert api.get(f"{base}/routes/{route['id']}").status_code == 200


def test_put_of_a_route_by_id_creates_it_with_that_id(
    api: httpx.Client, base: str
) -> None:
    route_id = "3f8c6f5e-8a53-4c1c-9f35-5a8e0b1d2c77"
    created = api.put(f"{base}/routes/{route_id}", json={"paths": ["/put"]})
    assert created.status_code == 201, created.text
    assert created.json()["id"] == route_id
    replaced = api.put(f"{base}/routes/{route_id}", json={"paths": ["/again"]})
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == created.json()["created_at"]
    assert replaced.json()["paths"] == ["/again"]


def test_put_replaces_rather_than_merges(api: httpx.Client, base: str) -> None:
    post(api, f"{base}/services", name="swap", url="http://up", retries=1, tags=["a"])
    replaced = api.put(f"{base}/services/swap", json={"url": "http://other"})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["retries"], replaced.json()["tags"]) == (5, None)


def test_put_of_a_basic_auth_credential_replaces_it_whole(
    api: httpx.Client, base: str
) -> None:
    post(api, f"{base}/consumers", username="hank")
    created = post(
        api, f"{base}/consumers/hank/basic-auth", username="hank", password="p1"
    )
    path = f"{base}/consumers/hank/basic-auth/{created['id']}"
    partial = api.put(path, json={"username": "hank", "tags": ["t"]})
    assert_problem(partial, 400, "password")
    replaced = api.put(path, json={"username": "hank", "password": "p2"})
    assert replaced.status_code == 200, replaced.text
    assert "password" not in replaced.json()


def test_expected_hash_follows_the_entities_not_the_version(
    api: httpx.Client, group: dict[str, Any]
) -> None:
    path = f"/v2/runtime-groups/{group['id']}/expected-config-hash"
    empty = api.get(path).json()
    assert re.fullmatch(r"[0-9a-f]{32}", empty["expected_hash"])
    for stamp in (empty["created_at"], empty["updated_at"]):
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    post(api, f"{entities(group)}/consumers", username="transient")
    changed = api.get(path).json()
    assert changed["expected_hash"] != empty["expected_hash"]
    assert api.delete(f"{entities(group)}/consumers/transient").status_code == 204
    again = api.get(path).json()
    assert again["expected_hash"] == empty["expected_hash"]
    assert again["version"] == empty["version"] + 2
