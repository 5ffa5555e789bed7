"""The key-auth plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, header_name_field, string

SCHEMA = PluginSchema(
    name="key-auth",
    priority=1250,
    no_consumer=True,
    config=record(
        {
            "key_names": Field(
                "array",
                required=True,
                default=["apikey"],
                len_min=1,
                elements=header_name_field(),
            ),
            "hide_credentials": boolean(False),
            "anonymous": string(),
            "key_in_header": boolean(True),
            "key_in_query": boolean(True),
            "key_in_body": boolean(False),
            "run_on_preflight": boolean(True),
            "realm": string(),
        }
    ),
)
