"""Kong's form conventions decoded to JSON-like bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.forms import form_to_body
from shared.schema import validate_entity

SERVICE_ID = "49fd316e-c457-481c-9fc7-8079153e4f3c"


def _refused(pairs: list[tuple[str, str]], type_name: str | None) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        form_to_body(pairs, type_name)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def test_bracketed_keys_build_an_array() -> None:
    body = form_to_body([("paths[]", "/a"), ("paths[]", "/b")], "routes")
    assert body == {"paths": ["/a", "/b"]}


def test_repeated_keys_build_an_array() -> None:
    body = form_to_body([("paths", "/a"), ("paths", "/b")], "routes")
    assert body == {"paths": ["/a", "/b"]}


def test_indexed_keys_build_an_array_in_index_order() -> None:
    body = form_to_body([("paths[2]", "/b"), ("paths[1]", "/a")], "routes")
    assert body == {"paths": ["/a", "/b"]}


def test_an_array_field_given_once_becomes_a_one_item_array() -> None:
    assert form_to_body([("methods", "GET")], "routes") == {"methods": ["GET"]}


def test_dotted_keys_build_nested_objects() -> None:
    body = form_to_body([("name", "basic-auth"), ("config.realm", "api")], "plugins")
    assert body == {"name": "basic-auth", "config": {"realm": "api"}}


def test_nested_array_keys_are_typed_by_the_plugin_schema() -> None:
    pairs = [
        ("name", "key-auth"),
        ("config.key_names[]", "apikey"),
        ("config.key_in_body", "true"),
    ]
    assert form_to_body(pairs, "plugins") == {
        "name": "key-auth",
        "config": {"key_names": ["apikey"], "key_in_body": True},
    }


def test_integers_and_booleans_are_coerced() -> None:
    pairs = [("host", "example.com"), ("port", "8080"), ("enabled", "false")]
    assert form_to_body(pairs, "services") == {
        "host": "example.com",
        "port": 8080,
        "enabled": False,
    }


def test_numbers_are_coerced() -> None:
    pairs = [
        ("name", "rate-limiting"),
        ("config.minute", "5"),
        ("config.sync_rate", "0.5"),
    ]
    assert form_to_body(pairs, "plugins")["config"] == {"minute": 5, "sync_rate": 0.5}


def test_a_foreign_key_by_id_or_by_name_stays_a_reference() -> None:
    assert form_to_body([("service.id", SERVICE_ID)], "routes") == {
        "service": {"id": SERVICE_ID}
    }
    assert form_to_body([("service.name", "svc")], "routes") == {
        "service": {"name": "svc"}
    }


def test_a_map_field_collects_its_keys() -> None:
    pairs = [("headers.x-version", "1"), ("headers.x-version", "2")]
    assert form_to_body(pairs, "routes") == {"headers": {"x-version": ["1", "2"]}}


def test_an_empty_value_means_null() -> None:
    assert form_to_body([("service", "")], "routes") == {"service": None}


def test_the_url_shorthand_is_accepted_for_services() -> None:
    assert form_to_body([("url", "http://x.example")], "services") == {
        "url": "http://x.example"
    }


def test_an_unknown_field_is_refused() -> None:
    assert _refused([("colour", "red")], "services") == {"colour": "unknown_field"}


def test_an_uncoercible_integer_is_refused() -> None:
    assert _refused([("port", "eighty")], "services") == {"port": "type"}


def test_an_uncoercible_boolean_is_refused() -> None:
    assert _refused([("strip_path", "yes")], "routes") == {"strip_path": "type"}


def test_an_unknown_nested_config_field_is_refused() -> None:
    pairs = [("name", "basic-auth"), ("config.realms", "x")]
    assert _refused(pairs, "plugins") == {"config.realms": "unknown_field"}


def test_a_scalar_given_twice_is_refused() -> None:
    assert _refused([("name", "a"), ("name", "b")], "services") == {"name": "type"}


def test_keys_that_disagree_on_shape_are_refused() -> None:
    assert _refused([("name", "a"), ("name.x", "b")], "services") == {
        "name.x": "form_key"
    }


def test_a_malformed_key_is_refused() -> None:
    assert _refused([("paths[x]", "/a")], "routes") == {"paths[x]": "form_key"}


def test_the_generic_variant_nests_without_coercing() -> None:
    pairs = [("name", "SRG1"), ("labels.env", "prod"), ("labels.tier", "1")]
    assert form_to_body(pairs, None) == {
        "name": "SRG1",
        "labels": {"env": "prod", "tier": "1"},
    }


def test_the_generic_variant_builds_arrays() -> None:
    pairs = [("members[].id", "a"), ("members[].id", "b")]
    assert form_to_body(pairs, None) == {"members": [{"id": "a"}, {"id": "b"}]}


def _nothing(entity_type: str, key: Mapping[str, Any]) -> str | None:
    return None


@pytest.mark.parametrize(
    ("type_name", "pairs", "body"),
    [
        (
            "services",
            [("name", "svc"), ("url", "http://mock.example:8080/anything")],
            {"name": "svc", "url": "http://mock.example:8080/anything"},
        ),
        (
            "routes",
            [("paths[]", "/mock"), ("methods", "GET"), ("strip_path", "false")],
            {"paths": ["/mock"], "methods": ["GET"], "strip_path": False},
        ),
        (
            "plugins",
            [
                ("name", "rate-limiting"),
                ("config.minute", "20"),
                ("config.policy", "local"),
            ],
            {"name": "rate-limiting", "config": {"minute": 20, "policy": "local"}},
        ),
    ],
)
def test_a_form_validates_to_the_same_entity_as_its_json_body(
    type_name: str, pairs: list[tuple[str, str]], body: dict[str, Any]
) -> None:
    fixed = {"id": SERVICE_ID}
    from_form = validate_entity(
        type_name, {**form_to_body(pairs, type_name), **fixed}, now=1, resolve=_nothing
    )
    from_json = validate_entity(type_name, {**body, **fixed}, now=1, resolve=_nothing)
    assert from_form == from_json


def test_a_nested_record_inside_a_plugin_config_is_typed() -> None:
    pairs = [("name", "rate-limiting"), ("config.redis.port", "6380")]
    assert form_to_body(pairs, "plugins")["config"] == {"redis": {"port": 6380}}


def test_a_record_given_a_plain_value_is_refused() -> None:
    pairs = [("name", "rate-limiting"), ("config.redis", "x")]
    assert _refused(pairs, "plugins") == {"config.redis": "type"}


def test_the_same_index_given_twice_is_refused() -> None:
    pairs = [("paths[1]", "/a"), ("paths[1]", "/b")]
    assert _refused(pairs, "routes") == {"paths[1]": "form_key"}


def test_an_unknown_plugins_config_stays_untyped_for_validation_to_refuse() -> None:
    pairs = [("name", "nope"), ("config.x", "1")]
    assert form_to_body(pairs, "plugins") == {"name": "nope", "config": {"x": "1"}}
