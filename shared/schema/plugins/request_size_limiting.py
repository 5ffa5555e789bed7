"""The request-size-limiting plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean

SCHEMA = PluginSchema(
    name="request-size-limiting",
    priority=951,
    config=record(
        {
            "allowed_payload_size": Field("integer", required=True, default=128),
            "size_unit": Field(
                "string",
                required=True,
                default="megabytes",
                one_of=("megabytes", "kilobytes", "bytes"),
            ),
            "require_content_length": boolean(False),
        }
    ),
)
