"""Strict JSON decoding of request bodies."""

from __future__ import annotations

import pytest

from shared.errors import ValidationError
from shared.jsonbody import loads_strict


def _refusal(data: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        loads_strict(data)
    return caught.value


def test_a_valid_document_decodes() -> None:
    assert loads_strict(b'{"a": [1, {"b": null}], "c": "d"}') == {
        "a": [1, {"b": None}],
        "c": "d",
    }


def test_a_duplicated_key_inside_a_list_is_named_by_its_path() -> None:
    error = _refusal(b'{"members": [{"id": "A", "id": "B"}]}')
    assert [(p.field, p.rule) for p in error.invalid_parameters] == [
        ("members[0].id", "duplicate_key")
    ]


def test_a_duplicated_top_level_key_is_refused() -> None:
    error = _refusal(b'{"name": "a", "name": "b"}')
    assert error.invalid_parameters[0].field == "name"


def test_every_duplicated_key_is_reported() -> None:
    error = _refusal(b'{"a": {"x": 1, "x": 2}, "b": [{}, {"y": 1, "y": 1}]}')
    assert sorted(p.field for p in error.invalid_parameters) == ["a.x", "b[1].y"]


def test_malformed_json_is_refused_with_the_json_rule() -> None:
    error = _refusal(b'{"a": ')
    assert error.invalid_parameters[0].rule == "json"


def test_invalid_utf8_is_refused_with_the_json_rule() -> None:
    assert _refusal(b'{"a": "\xff"}').invalid_parameters[0].rule == "json"


def test_nan_is_refused() -> None:
    assert _refusal(b'{"a": NaN}').invalid_parameters[0].rule == "json"


def test_a_document_that_is_not_an_object_decodes() -> None:
    assert loads_strict(b"[1, 2]") == [1, 2]


def test_a_number_too_large_for_a_float_is_refused() -> None:
    assert _refusal(b'{"a": 1e999}').invalid_parameters[0].rule == "json"


def test_a_document_nested_too_deeply_is_refused() -> None:
    assert _refusal(b"[" * 100_000).invalid_parameters[0].rule == "json"
