"""The request-termination plugin's config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidParameter
from shared.schema.fields import Field, join, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, header_name_field, string


def _body_rules(config: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    has_body = config.get("body") is not None
    has_type = config.get("content_type") is not None
    if config.get("message") is not None and (has_body or has_type):
        reason = "message cannot be used with content_type or body"
        return [InvalidParameter(join(path, "message"), "conflict", reason)]
    if has_type and not has_body:
        reason = "content_type requires a body"
        return [InvalidParameter(join(path, "content_type"), "conflict", reason)]
    if config.get("echo") and (has_body or has_type):
        reason = "echo cannot be used with content_type and body"
        return [InvalidParameter(join(path, "echo"), "conflict", reason)]
    return []


SCHEMA = PluginSchema(
    name="request-termination",
    priority=2,
    config=record(
        {
            "status_code": Field(
                "integer", required=True, default=503, between=(100, 599)
            ),
            "message": string(),
            "content_type": string(),
            "body": string(),
            "echo": boolean(False),
            # A header or query argument name, as Kong's typedefs.header_name.
            "trigger": header_name_field(),
        },
        _body_rules,
    ),
)
