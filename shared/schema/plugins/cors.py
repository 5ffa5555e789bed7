"""The cors plugin's config."""

from __future__ import annotations

import re

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, string, string_array

METHODS = (
    "GET",
    "HEAD",
    "PUT",
    "PATCH",
    "POST",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
)


def _check_origin(value: str) -> str | None:
    if value == "*":
        return None
    try:
        re.compile(value)
    except re.error:
        return f"'{value}' is not a valid regex"
    return None


SCHEMA = PluginSchema(
    name="cors",
    priority=2000,
    no_consumer=True,
    config=record(
        {
            "origins": Field(
                "array", elements=string(checks=(("regex", _check_origin),))
            ),
            "headers": string_array(),
            "exposed_headers": string_array(),
            "methods": Field(
                "array",
                default=list(METHODS),
                elements=Field("string", one_of=METHODS),
            ),
            "max_age": Field("number"),
            "credentials": boolean(False),
            "private_network": boolean(False),
            "preflight_continue": boolean(False),
        }
    ),
)
