"""Field types of the request- and response-transformer plugins.

Both take lists of ``name:value`` pairs for the values they add, append,
replace or rename, and lists of names for the values they remove. The
request-transformer's values may hold `$(...)` templates
(:mod:`shared.templates`), checked here so that a node never meets one it
cannot render.
"""

from __future__ import annotations

from shared import templates
from shared.schema.fields import Field, ValueCheck
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


def _check_valued_pair(value: str) -> str | None:
    name, sep, rest = value.partition(":")
    if not sep or not name:
        return f"invalid value: {value} (expected 'name:value')"
    if not rest:
        return f"key '{name}' has no value"
    return None


def _check_value_template(value: str) -> str | None:
    return templates.check(value.partition(":")[2])


def _check_new_header_name(value: str) -> str | None:
    return check_header_name(value.partition(":")[2])


def _strings(*checks: tuple[str, ValueCheck]) -> Field:
    """Return a list of strings passing `checks`, empty by default."""
    return Field("array", required=True, default=[], elements=string(checks=checks))


def names() -> Field:
    """Return a list of names, empty by default."""
    return _strings()


def header_names() -> Field:
    """Return a list of header names, empty by default."""
    return _strings(("header_name", check_header_name))


def pairs() -> Field:
    """Return a list of ``name:value`` pairs, empty by default."""
    return _strings(("pair", _check_pair))


def header_pairs() -> Field:
    """Return a list of ``header:value`` pairs, empty by default."""
    return _strings(("pair", _check_header_pair))


def template_pairs() -> Field:
    """Return a list of ``name:value`` pairs whose values may be templates."""
    return _strings(("pair", _check_valued_pair), ("template", _check_value_template))


def template_header_pairs() -> Field:
    """Return a list of ``header:value`` pairs whose values may be templates."""
    return _strings(("pair", _check_header_pair), ("template", _check_value_template))


def header_renames() -> Field:
    """Return a list of ``old:new`` header names, empty by default."""
    return _strings(
        ("pair", _check_header_pair), ("header_name", _check_new_header_name)
    )
