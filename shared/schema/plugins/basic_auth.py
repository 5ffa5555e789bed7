"""The basic-auth plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, string

SCHEMA = PluginSchema(
    name="basic-auth",
    priority=1100,
    no_consumer=True,
    config=record(
        {
            # A consumer id or username to fall back to when authentication fails.
            "anonymous": string(),
            "hide_credentials": boolean(False),
            "realm": Field("string", required=True, default="service"),
        }
    ),
)
