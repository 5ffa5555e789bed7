"""Plugin entities: known names, scopes, protocols and config merging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema import PLUGIN_SCHEMAS, plugin_scope_key, public_view, validate_entity

NOW = 1_700_000_000
SERVICE = "49fd316e-c457-481c-9fc7-8079153e4f3c"
ROUTE = "56c4566c-14cc-4132-9011-4139fcbbe50a"
CONSUMER = "8a388226-80e8-4027-a486-25e4f7db5d21"
KNOWN = {("services", SERVICE), ("routes", ROUTE), ("consumers", CONSUMER)}


def _resolve(entity_type: str, key: Mapping[str, Any]) -> str | None:
    value = key.get("id")
    return value if (entity_type, value) in KNOWN else None


def _plugin(body: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return validate_entity("plugins", body, now=NOW, resolve=_resolve, **kwargs)


def _refusal(body: Mapping[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _plugin(body)
    return caught.value


def _refused(body: Mapping[str, Any]) -> dict[str, str]:
    return {p.field: p.rule for p in _refusal(body).invalid_parameters}


def test_a_global_plugin_gets_its_config_defaults() -> None:
    plugin = _plugin({"name": "basic-auth"})
    assert plugin["config"] == {
        "anonymous": None,
        "hide_credentials": False,
        "realm": "service",
    }
    assert (plugin["service"], plugin["route"], plugin["consumer"]) == (
        None,
        None,
        None,
    )
    assert plugin["enabled"] is True


def test_protocols_default_to_the_http_family() -> None:
    assert _plugin({"name": "cors"})["protocols"] == ["grpc", "grpcs", "http", "https"]


def test_a_protocol_the_plugin_does_not_serve_is_refused() -> None:
    assert _refused({"name": "cors", "protocols": ["tcp"]}) == {
        "protocols[0]": "one_of"
    }


def test_an_unknown_plugin_is_refused_listing_the_known_ones() -> None:
    (param,) = _refusal({"name": "no-such-plugin"}).invalid_parameters
    assert (param.field, param.rule) == ("name", "unknown_plugin")
    assert all(name in param.reason for name in PLUGIN_SCHEMAS)


def test_a_plugin_needs_a_name() -> None:
    assert _refused({"config": {}}) == {"name": "required"}


def test_an_unknown_config_field_is_refused_with_its_dotted_path() -> None:
    assert _refused({"name": "basic-auth", "config": {"realms": "x"}}) == {
        "config.realms": "unknown_field"
    }


def test_a_config_type_error_names_the_nested_field() -> None:
    assert _refused({"name": "basic-auth", "config": {"hide_credentials": "yes"}}) == {
        "config.hide_credentials": "type"
    }


def test_a_plugin_can_be_scoped_to_a_service_and_a_route() -> None:
    plugin = _plugin({"name": "cors", "service": {"id": SERVICE}, "route": ROUTE})
    assert plugin["service"] == {"id": SERVICE}
    assert plugin["route"] == {"id": ROUTE}


def test_an_unknown_scope_is_refused() -> None:
    body = {"name": "cors", "route": {"id": SERVICE}}
    assert _refused(body) == {"route": "foreign_key"}


@pytest.mark.parametrize("name", ["basic-auth", "key-auth"])
def test_an_auth_plugin_cannot_be_scoped_to_a_consumer(name: str) -> None:
    body = {"name": name, "consumer": {"id": CONSUMER}}
    assert _refused(body) == {"consumer": "no_consumer"}


def test_other_plugins_can_be_scoped_to_a_consumer() -> None:
    body = {
        "name": "rate-limiting",
        "consumer": {"id": CONSUMER},
        "config": {"minute": 5},
    }
    assert _plugin(body)["consumer"] == {"id": CONSUMER}


def test_an_update_merges_the_config_deeply() -> None:
    existing = _plugin({"name": "basic-auth", "config": {"hide_credentials": True}})
    updated = _plugin({"config": {"realm": "api"}}, existing=existing)
    assert updated["config"] == {
        "anonymous": None,
        "hide_credentials": True,
        "realm": "api",
    }


def test_an_update_merges_nested_records() -> None:
    body = {
        "name": "rate-limiting",
        "config": {
            "minute": 5,
            "policy": "redis",
            "redis": {"host": "redis.local", "database": 2},
        },
    }
    existing = _plugin(body)
    updated = _plugin({"config": {"redis": {"port": 6380}}}, existing=existing)
    redis = updated["config"]["redis"]
    assert (redis["host"], redis["port"], redis["database"]) == ("redis.local", 6380, 2)


def test_an_update_replaces_arrays_whole() -> None:
    existing = _plugin({"name": "key-auth", "config": {"key_names": ["a", "b"]}})
    updated = _plugin({"config": {"key_names": ["c"]}}, existing=existing)
    assert updated["config"]["key_names"] == ["c"]


def test_an_update_without_config_keeps_it() -> None:
    existing = _plugin({"name": "basic-auth", "config": {"realm": "x"}})
    assert _plugin({"enabled": False}, existing=existing)["config"]["realm"] == "x"


def test_an_instance_name_follows_the_name_rule() -> None:
    assert _refused({"name": "cors", "instance_name": "a b"}) == {
        "instance_name": "name"
    }


def test_the_scope_key_identifies_name_and_scope() -> None:
    plugin = _plugin({"name": "cors", "service": {"id": SERVICE}})
    assert plugin_scope_key(plugin) == ("cors", SERVICE, None, None)
    assert plugin_scope_key(_plugin({"name": "cors"})) == ("cors", None, None, None)


def test_the_public_view_hides_a_redis_password() -> None:
    body = {
        "name": "rate-limiting",
        "config": {
            "minute": 5,
            "policy": "redis",
            "redis": {"host": "redis.local", "password": "hunter2"},
        },
    }
    plugin = _plugin(body)
    assert plugin["config"]["redis"]["password"] == "hunter2"
    assert public_view("plugins", plugin)["config"]["redis"]["password"] is None


def test_every_plugin_has_kongs_priority() -> None:
    priorities = {name: schema.priority for name, schema in PLUGIN_SCHEMAS.items()}
    assert priorities == {
        "acl": 950,
        "basic-auth": 1100,
        "correlation-id": 100001,
        "cors": 2000,
        "ip-restriction": 990,
        "key-auth": 1250,
        "prometheus": 13,
        "rate-limiting": 910,
        "request-size-limiting": 951,
        "request-termination": 2,
        "request-transformer": 801,
        "response-transformer": 800,
    }


@pytest.mark.parametrize("name", sorted(PLUGIN_SCHEMAS))
def test_every_plugin_but_the_ones_needing_settings_accepts_an_empty_config(
    name: str,
) -> None:
    needs_settings = {"acl", "ip-restriction", "rate-limiting"}
    if name in needs_settings:
        with pytest.raises(ValidationError):
            _plugin({"name": name})
    else:
        assert isinstance(_plugin({"name": name})["config"], dict)
