"""The declarative field language the schemas are written in."""

from __future__ import annotations

from shared.schema.fields import Checker, Field, merge_record, record


def test_an_absent_field_gets_its_default_copied() -> None:
    spec = record({"names": Field("array", default=["a"])})
    first = Checker().check(spec, {}, "")
    first["names"].append("b")
    assert Checker().check(spec, {}, "") == {"names": ["a"]}


def test_an_integral_float_is_accepted_as_an_integer() -> None:
    assert Checker().check(Field("integer"), 5.0, "n") == 5


def test_a_boolean_is_not_an_integer() -> None:
    checker = Checker()
    checker.check(Field("integer"), True, "n")
    assert [(e.field, e.rule) for e in checker.errors] == [("n", "type")]


def test_record_checks_run_only_when_fields_are_valid() -> None:
    calls: list[object] = []

    def check(value: object, path: str) -> list:  # type: ignore[type-arg]
        calls.append(value)
        return []

    spec = record({"n": Field("integer")}, check)
    Checker().check(spec, {"n": "x"}, "")
    assert calls == []


def test_an_absent_required_record_is_checked_with_its_defaults() -> None:
    spec = record({"inner": record({"flag": Field("boolean", default=True)})})
    assert Checker().check(spec, {}, "") == {"inner": {"flag": True}}


def test_merge_record_merges_records_and_replaces_the_rest() -> None:
    spec = record(
        {"r": record({"a": Field("any"), "b": Field("any")}), "l": Field("array")}
    )
    merged = merge_record(
        spec, {"r": {"a": 1, "b": 2}, "l": [1]}, {"r": {"b": 3}, "l": [2]}
    )
    assert merged == {"r": {"a": 1, "b": 3}, "l": [2]}
