"""The request-transformer plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.plugins.transforms import header_names, header_pairs, names, pairs
from shared.schema.typedefs import string

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
            "rename": record(
                {"body": pairs(), "headers": header_pairs(), "querystring": pairs()}
            ),
            "replace": record(
                {
                    "body": pairs(),
                    "headers": header_pairs(),
                    "querystring": pairs(),
                    "uri": string(),
                }
            ),
            "add": record(
                {"body": pairs(), "headers": header_pairs(), "querystring": pairs()}
            ),
            "append": record(
                {"body": pairs(), "headers": header_pairs(), "querystring": pairs()}
            ),
        }
    ),
)
