"""Strict JSON decoding of request bodies.

Python's decoder keeps the last of two equal keys in an object. Konnect's
membership body ``{"members": [{"id": A}, {"id": B}]}`` mistyped as
``{"members": [{"id": A, "id": B}]}`` would then silently add B only, so a
duplicated key is refused with its path. NaN and Infinity, which JSON does not
have, and numbers too large for a float are refused too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from shared.errors import InvalidParameter, ValidationError


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers the keys it had more than once."""

    duplicates: list[str]


def _malformed(reason: str) -> ValidationError:
    return ValidationError(
        "malformed JSON body", [InvalidParameter("@body", "json", reason)]
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _path(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _find(value: Any, prefix: str, found: list[str]) -> None:
    if isinstance(value, _Object):
        found.extend(_path(prefix, key) for key in value.duplicates)
        for key, item in value.items():
            _find(item, _path(prefix, key), found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _find(item, _path(prefix, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find(item, _path(prefix, index), found)


def loads_strict(data: bytes) -> Any:
    """Decode a JSON document, refusing duplicated keys and malformed input."""
    any_duplicate = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal any_duplicate
        result: dict[str, Any] = {}
        duplicates: list[str] = []
        for key, value in pairs:
            if key in result and key not in duplicates:
                duplicates.append(key)
            result[key] = value
        if not duplicates:
            return result
        any_duplicate = True
        marked = _Object(result)
        marked.duplicates = duplicates
        return marked

    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=pairs_hook,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise _malformed("JSON body nested too deeply") from None

    if not any_duplicate:
        return value
    found: list[str] = []
    try:
        _find(value, "", found)
    except RecursionError:
        raise _malformed("JSON body nested too deeply") from None
    raise ValidationError(
        "duplicate keys in JSON body",
        [
            InvalidParameter(path, "duplicate_key", "key appears more than once")
            for path in found
        ],
    )
