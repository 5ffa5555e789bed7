"""A small declarative schema language for entities and plugin configs.

A :class:`Field` states a value's type and its rules, the way Kong's schema
tables do: ``Field("integer", default=60000, between=(1, MAX_TIMEOUT))``.
:class:`Checker` walks a value against its field, fills in defaults, and
collects one :class:`~shared.errors.InvalidParameter` per offending field
instead of stopping at the first, so a client learns everything it has to fix
in one round trip.

Types: ``string``, ``integer``, ``number``, ``boolean``, ``array``, ``map``
(string keys, typed values), ``record`` (named fields), ``foreign`` (a
reference to another entity, resolved by the caller) and ``any``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidParameter

# A custom check returns the reason a value is wrong, or None when it is fine.
ValueCheck = Callable[[Any], str | None]
# An entity check sees a whole record whose fields are valid, and returns the
# offending parameters it finds.
RecordCheck = Callable[[Mapping[str, Any], str], list[InvalidParameter]]
# Resolves a foreign key; see Checker.
ForeignHook = Callable[["Field", Any, str, list[InvalidParameter]], Any]

_ARTICLES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "map": "a map",
    "record": "a record",
    "foreign": 'a reference ({"id": ...})',
}


@dataclass(frozen=True, eq=False)
class Field:
    """Describe one value: its type, whether it is required, and its rules."""

    type: str
    required: bool = False
    default: Any = None
    one_of: tuple[Any, ...] | None = None
    one_of_reason: str | None = None
    between: tuple[float, float] | None = None
    gt: float | None = None
    len_min: int | None = None
    match: str | None = None
    match_reason: str | None = None
    elements: Field | None = None
    keys: Field | None = None
    values: Field | None = None
    fields: Mapping[str, Field] = field(default_factory=dict)
    checks: tuple[tuple[str, ValueCheck], ...] = ()
    record_checks: tuple[RecordCheck, ...] = ()
    reference: str | None = None
    # A secret is write-only: never returned by the admin API.
    secret: bool = False

    def fill_default(self) -> Any:
        """Return a fresh copy of the default, safe for the caller to mutate."""
        return copy.deepcopy(self.default)


def record(
    fields: Mapping[str, Field],
    *checks: RecordCheck,
    required: bool = True,
) -> Field:
    """Return a record field; a required record defaults to its fields' defaults."""
    return Field("record", required=required, fields=fields, record_checks=checks)


def join(prefix: str, name: str | int) -> str:
    """Return the dotted path of `name` inside `prefix` (``a.b``, ``a[0]``)."""
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


# Integers beyond this lose precision in JSON clients (and in Kong's Lua).
MAX_SAFE_INTEGER = 2**53 - 1


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not value.is_integer():
        return False
    return abs(value) <= MAX_SAFE_INTEGER


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and abs(value) <= 2**63


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Checker:
    """Check values against fields, collecting every offending parameter.

    `foreign` resolves a ``foreign`` field's value to ``{"id": ...}``; without
    it, foreign keys are only shape-checked.
    """

    errors: list[InvalidParameter] = field(default_factory=list)
    foreign: ForeignHook | None = None

    def fail(self, path: str, rule: str, reason: str) -> None:
        """Record one offending parameter."""
        self.errors.append(InvalidParameter(path or "@entity", rule, reason))

    def check_record(
        self, spec: Field, value: Mapping[str, Any], path: str
    ) -> dict[str, Any]:
        """Return `value` with defaults filled; refuse unknown fields."""
        result: dict[str, Any] = {}
        for name in value:
            if name not in spec.fields:
                self.fail(join(path, name), "unknown_field", "unknown field")
        before = len(self.errors)
        for name, sub in spec.fields.items():
            if name in value:
                result[name] = self.check(sub, value[name], join(path, name))
            elif sub.type == "record" and sub.required and sub.default is None:
                # An absent required record is its defaults, checked as such.
                result[name] = self.check_record(sub, {}, join(path, name))
            else:
                result[name] = sub.fill_default()
                if result[name] is None and sub.required:
                    self.fail(join(path, name), "required", "required field missing")
        if len(self.errors) == before:
            # Like Kong, entity checks run only once every field is valid.
            for check in spec.record_checks:
                self.errors.extend(check(result, path))
        return result

    def check(self, spec: Field, value: Any, path: str) -> Any:
        """Return `value` checked against `spec`, normalised; record errors."""
        if value is None:
            if spec.required:
                self.fail(path, "required", "required field missing")
            return None

        checker = getattr(self, f"_check_{spec.type}")
        before = len(self.errors)
        result = checker(spec, value, path)
        if len(self.errors) > before:
            return result

        if spec.one_of is not None and result not in spec.one_of:
            listed = ", ".join(str(v) for v in spec.one_of)
            self.fail(
                path, "one_of", spec.one_of_reason or f"expected one of: {listed}"
            )
            return result
        if not self._check_bounds(spec, result, path):
            return result
        for rule, check in spec.checks:
            problem = check(result)
            if problem is not None:
                self.fail(path, rule, problem)
                break
        return result

    def _check_bounds(self, spec: Field, value: Any, path: str) -> bool:
        if spec.between is not None:
            low, high = spec.between
            if not low <= value <= high:
                reason = f"value should be between {_format(low)} and {_format(high)}"
                self.fail(path, "between", reason)
                return False
        if spec.gt is not None and not value > spec.gt:
            self.fail(path, "gt", f"value must be greater than {_format(spec.gt)}")
            return False
        if spec.len_min is not None and len(value) < spec.len_min:
            what = "length" if isinstance(value, str) else "number of items"
            self.fail(path, "len_min", f"{what} must be at least {spec.len_min}")
            return False
        if spec.match is not None and not re.fullmatch(spec.match, value):
            reason = spec.match_reason or f"invalid value: {value}"
            self.fail(path, "match", reason)
            return False
        return True

    def _type_error(self, spec: Field, path: str) -> None:
        self.fail(path, "type", f"expected {_ARTICLES[spec.type]}")

    def _check_any(self, spec: Field, value: Any, path: str) -> Any:
        return value

    def _check_string(self, spec: Field, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self._type_error(spec, path)
        return value

    def _check_integer(self, spec: Field, value: Any, path: str) -> Any:
        if not _is_integer(value):
            self._type_error(spec, path)
            return value
        return int(value)

    def _check_number(self, spec: Field, value: Any, path: str) -> Any:
        if not _is_number(value):
            self._type_error(spec, path)
        return value

    def _check_boolean(self, spec: Field, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            self._type_error(spec, path)
        return value

    def _check_array(self, spec: Field, value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            self._type_error(spec, path)
            return value
        if spec.elements is None:
            return list(value)
        return [
            self.check(spec.elements, item, join(path, i))
            for i, item in enumerate(value)
        ]

    def _check_map(self, spec: Field, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            self._type_error(spec, path)
            return value
        result: dict[str, Any] = {}
        for key, item in value.items():
            item_path = join(path, str(key))
            if spec.keys is not None:
                self.check(spec.keys, key, item_path)
            if spec.values is not None:
                item = self.check(spec.values, item, item_path)
            result[key] = item
        return result

    def _check_record(self, spec: Field, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            self._type_error(spec, path)
            return value
        return self.check_record(spec, value, path)

    def _check_foreign(self, spec: Field, value: Any, path: str) -> Any:
        if self.foreign is None:
            return value
        return self.foreign(spec, value, path, self.errors)


def merge_record(spec: Field, base: Any, update: Any) -> Any:
    """Return `update` merged over `base`, record fields recursively, like Kong.

    Maps, arrays and scalars are replaced whole; a record is merged key by key
    so that ``PATCH {"config": {"realm": "x"}}`` keeps the rest of a config.
    """
    if (
        spec.type != "record"
        or not isinstance(base, Mapping)
        or not isinstance(update, Mapping)
    ):
        return update
    merged = dict(base)
    for name, value in update.items():
        sub = spec.fields.get(name)
        merged[name] = (
            value if sub is None else merge_record(sub, base.get(name), value)
        )
    return merged
