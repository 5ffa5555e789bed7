"""The request-transformer plugin's config."""

from __future__ import annotations

from shared import templates
from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.plugins.transforms import (
    header_names,
    header_renames,
    names,
    template_header_pairs,
    template_pairs,
)
from shared.schema.typedefs import string


def _check_uri(value: str) -> str | None:
    """Return why `value` cannot be the upstream path, or None."""
    reason = templates.check(value)
    if reason is not None:
        return reason
    first = templates.parse(value).parts[0]
    if isinstance(first, str) and not first.startswith("/"):
        # Kong fails every request with such a path (500); refuse it here.
        return f"invalid value: {value} (a path starts with / or a template)"
    return None


def _section(headers: Field, **more: Field) -> Field:
    return record(
        {
            "body": template_pairs(),
            "headers": headers,
            "querystring": template_pairs(),
            **more,
        }
    )


SCHEMA = PluginSchema(
    name="request-transformer",
    priority=801,
    config=record(
        {
            "http_method": Field(
                "string",
                match=r"[A-Z]+",
                match_reason="invalid value: expected an uppercase HTTP method",
            ),
            "remove": record(
                {"body": names(), "headers": header_names(), "querystring": names()}
            ),
            "rename": _section(header_renames()),
            "replace": _section(
                template_header_pairs(),
                uri=string(checks=(("template", _check_uri),)),
            ),
            "add": _section(template_header_pairs()),
            "append": _section(template_header_pairs()),
        }
    ),
)
