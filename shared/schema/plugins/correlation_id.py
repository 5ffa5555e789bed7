"""The correlation-id plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, header_name_field

SCHEMA = PluginSchema(
    name="correlation-id",
    priority=100001,
    config=record(
        {
            "header_name": header_name_field(default="Kong-Request-ID"),
            "generator": Field(
                "string",
                required=True,
                default="uuid#counter",
                one_of=("uuid", "uuid#counter", "tracker"),
            ),
            "echo_downstream": boolean(False),
        }
    ),
)
