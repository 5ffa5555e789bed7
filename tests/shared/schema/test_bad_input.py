"""Bad input of any shape is refused with ValidationError, never a crash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema import ENTITIES, PLUGIN_SCHEMAS, validate_entity

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**80,
    1.5,
    "",
    "x",
    "~/([",
    "*.*",
    [],
    [None],
    [1, "a"],
    [[]],
    {},
    {"id": None},
    {"id": 5},
    {"x": [1]},
]

VALID: dict[str, dict[str, Any]] = {
    "services": {"host": "example.com"},
    "routes": {"paths": ["/"]},
    "consumers": {"username": "bob"},
    "plugins": {"name": "key-auth"},
    "basicauth_credentials": {"consumer": "bob", "username": "u", "password": "p"},
    "keyauth_credentials": {"consumer": "bob"},
    "acls": {"consumer": "bob", "group": "g"},
}


def _resolve(entity_type: str, key: Mapping[str, Any]) -> str | None:
    return "8a388226-80e8-4027-a486-25e4f7db5d21"


def _validate(type_name: str, body: Mapping[str, Any]) -> None:
    try:
        validate_entity(type_name, body, now=1, resolve=_resolve)
    except ValidationError as exc:
        assert exc.invalid_parameters, f"{type_name} refused without naming a field"


@pytest.mark.parametrize("type_name", sorted(ENTITIES))
def test_any_value_in_any_field_is_accepted_or_refused_cleanly(type_name: str) -> None:
    for field in [*ENTITIES[type_name].record.fields, "url", "unknown"]:
        for value in ODD_VALUES:
            _validate(type_name, {**VALID[type_name], field: value})


@pytest.mark.parametrize("plugin", sorted(PLUGIN_SCHEMAS))
def test_any_value_in_any_config_field_is_accepted_or_refused_cleanly(
    plugin: str,
) -> None:
    for field, spec in PLUGIN_SCHEMAS[plugin].config.fields.items():
        for value in ODD_VALUES:
            _validate("plugins", {"name": plugin, "config": {field: value}})
            for inner in spec.fields:
                config = {field: {inner: value}}
                _validate("plugins", {"name": plugin, "config": config})


@pytest.mark.parametrize("value", ODD_VALUES)
def test_any_plugin_config_value_is_accepted_or_refused_cleanly(value: Any) -> None:
    _validate("plugins", {"name": "rate-limiting", "config": value})
