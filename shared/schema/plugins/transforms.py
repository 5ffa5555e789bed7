"""Field types of the request- and response-transformer plugins.

Both take lists of ``name:value`` pairs for the values they add, append,
replace or rename, and lists of names for the values they remove.
"""

from __future__ import annotations

from shared.schema.fields import Field
from shared.schema.typedefs import check_header_name, string


def _check_pair(value: str) -> str | None:
    name, sep, _ = value.partition(":")
    if not sep or not name:
        return f"invalid value: {value} (expected 'name:value')"
    return None


def _check_header_pair(value: str) -> str | None:
    reason = _check_pair(value)
    if reason is not None:
        return reason
    return check_header_name(value.partition(":")[0])


def names() -> Field:
    """Return a list of names, empty by default."""
    return Field("array", required=True, default=[], elements=string())


def header_names() -> Field:
    """Return a list of header names, empty by default."""
    return Field(
        "array",
        required=True,
        default=[],
        elements=string(checks=(("header_name", check_header_name),)),
    )


def pairs() -> Field:
    """Return a list of ``name:value`` pairs, empty by default."""
    return Field(
        "array",
        required=True,
        default=[],
        elements=string(checks=(("pair", _check_pair),)),
    )


def header_pairs() -> Field:
    """Return a list of ``header:value`` pairs, empty by default."""
    return Field(
        "array",
        required=True,
        default=[],
        elements=string(checks=(("pair", _check_header_pair),)),
    )
