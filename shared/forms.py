"""Kong's form conventions, decoded to the JSON-like bodies the schemas check.

``curl --data`` sends flat ``key=value`` pairs; Kong's Admin API reads
structure into the keys and types out of the entity's schema:

- ``paths[]=/a&paths[]=/b``, ``paths=/a&paths=/b`` and ``paths[1]=/a`` build
  arrays (indexed items in index order, then appended ones);
- ``config.realm=x`` and ``service.id=<uuid>`` build nested objects;
- values become integers, numbers and booleans where the schema says so, an
  array field given once becomes a one-item array, and an empty value means
  null.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidParameter, ValidationError
from shared.schema import ENTITIES, PLUGIN_SCHEMAS, Field
from shared.schema.fields import join

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d*\])*)")
_INDEX = re.compile(r"\[(\d*)\]")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

Token = str | int | None  # a field name, an array index, or "append"


@dataclass
class _Array:
    """An array under construction: items by index, then appended items."""

    indexed: dict[int, Any] = field(default_factory=dict)
    appended: list[Any] = field(default_factory=list)


class _Shape(Exception):
    """Raised when two keys disagree on the shape of one value."""


def _tokens(key: str) -> list[Token] | None:
    tokens: list[Token] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            return None
        tokens.append(match.group(1))
        for index in _INDEX.findall(match.group(2)):
            tokens.append(int(index) if index else None)
    return tokens


def _new_container(token: Token) -> Any:
    return {} if isinstance(token, str) else _Array()


def _child(container: Any, token: Token, next_token: Token) -> Any:
    """Return the container `token` names inside `container`, creating it."""
    if isinstance(token, str):
        if not isinstance(container, dict):
            raise _Shape
        child = container.setdefault(token, _new_container(next_token))
    elif not isinstance(container, _Array):
        raise _Shape
    elif token is None:
        child = _new_container(next_token)
        container.appended.append(child)
    else:
        child = container.indexed.setdefault(token, _new_container(next_token))
    wanted = dict if isinstance(next_token, str) else _Array
    if not isinstance(child, wanted):
        raise _Shape
    return child


def _store(container: Any, token: Token, value: str) -> None:
    if isinstance(container, _Array):
        if token is None:
            container.appended.append(value)
        elif isinstance(token, str) or token in container.indexed:
            raise _Shape
        else:
            container.indexed[token] = value
        return
    if not isinstance(container, dict) or not isinstance(token, str):
        raise _Shape
    known = container.get(token)
    if known is None:
        container[token] = value
    elif isinstance(known, str):
        # A repeated key (`paths=/a&paths=/b`) builds an array.
        container[token] = _Array(appended=[known, value])
    elif isinstance(known, _Array):
        known.appended.append(value)
    else:
        raise _Shape


def _finish(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finish(item) for key, item in value.items()}
    if isinstance(value, _Array):
        items = [value.indexed[i] for i in sorted(value.indexed)] + value.appended
        return [_finish(item) for item in items]
    return value


def _nest(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    errors: list[InvalidParameter] = []
    for key, value in pairs:
        tokens = _tokens(key)
        if not tokens or not isinstance(tokens[0], str):
            errors.append(InvalidParameter(key, "form_key", "malformed form key"))
            continue
        try:
            container: Any = root
            for token, next_token in zip(tokens, tokens[1:], strict=False):
                container = _child(container, token, next_token)
            _store(container, tokens[-1], value)
        except _Shape:
            reason = "conflicts with another key for the same field"
            errors.append(InvalidParameter(key, "form_key", reason))
    if errors:
        raise ValidationError("malformed form body", errors)
    return {key: _finish(value) for key, value in root.items()}


@dataclass
class _Coercer:
    """Type the strings of a nested form by a schema, collecting every error."""

    errors: list[InvalidParameter] = field(default_factory=list)

    def fail(self, path: str, rule: str, reason: str) -> None:
        self.errors.append(InvalidParameter(path, rule, reason))

    def value(self, spec: Field, value: Any, path: str) -> Any:
        if value == "":
            return None
        kind = spec.type
        if kind in ("any", "foreign"):
            return value
        if kind == "array":
            items = value if isinstance(value, list) else [value]
            if spec.elements is None:
                return items
            return [
                self.item(spec.elements, item, join(path, i))
                for i, item in enumerate(items)
            ]
        if kind in ("record", "map"):
            if not isinstance(value, dict):
                self.fail(path, "type", f"expected a {kind}: use '{path}.<name>=...'")
                return value
            if kind == "map":
                values = spec.values or Field("any")
                return {
                    k: self.value(values, v, join(path, k)) for k, v in value.items()
                }
            return self.record(spec.fields, value, path)
        if not isinstance(value, str):
            self.fail(path, "type", "expected a single value")
            return value
        return self.scalar(kind, value, path)

    def item(self, spec: Field, value: Any, path: str) -> Any:
        # Inside an array an empty string is an item, not a null.
        if value == "" and spec.type == "string":
            return value
        return self.value(spec, value, path)

    def scalar(self, kind: str, value: str, path: str) -> Any:
        if kind == "integer":
            if _INTEGER.fullmatch(value):
                return int(value)
            self.fail(path, "type", "expected an integer")
        elif kind == "number":
            if _INTEGER.fullmatch(value):
                return int(value)
            if _NUMBER.fullmatch(value):
                return float(value)
            self.fail(path, "type", "expected a number")
        elif kind == "boolean":
            if value in ("true", "false"):
                return value == "true"
            self.fail(path, "type", "expected a boolean: true or false")
        return value

    def record(
        self, fields: dict[str, Field] | Any, value: dict[str, Any], path: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in value.items():
            spec = fields.get(key)
            if spec is None:
                self.fail(join(path, key), "unknown_field", "unknown field")
                result[key] = item
            else:
                result[key] = self.value(spec, item, join(path, key))
        return result


def _entity_fields(type_name: str, body: dict[str, Any]) -> dict[str, Field]:
    schema = ENTITIES[type_name]
    fields = {**schema.record.fields, **schema.write_only}
    if type_name == "plugins":
        plugin = PLUGIN_SCHEMAS.get(str(body.get("name")))
        if plugin is not None:
            fields["config"] = plugin.config
    return fields


def form_to_body(
    pairs: Sequence[tuple[str, str]], type_name: str | None
) -> dict[str, Any]:
    """Return the JSON-like body a form stands for, typed by an entity's schema.

    With `type_name` None (bodies that are not entities, such as a runtime
    group's ``labels.env=prod``), keys are nested and values stay strings.
    Raises ValidationError naming every unknown or uncoercible field.
    """
    body = _nest(pairs)
    if type_name is None:
        return body
    coercer = _Coercer()
    result = coercer.record(_entity_fields(type_name, body), body, "")
    if coercer.errors:
        reasons = "; ".join(f"{e.field}: {e.reason}" for e in coercer.errors)
        raise ValidationError(f"schema violation ({reasons})", coercer.errors)
    return result
