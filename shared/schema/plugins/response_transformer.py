"""The response-transformer plugin's config."""

from __future__ import annotations

from shared.schema.fields import Field, record
from shared.schema.plugin import PluginSchema
from shared.schema.plugins.transforms import header_names, header_pairs, names, pairs


def _json_types() -> Field:
    return Field(
        "array",
        required=True,
        default=[],
        elements=Field("string", one_of=("boolean", "number", "string")),
    )


def _changes() -> dict[str, Field]:
    return {"json": pairs(), "json_types": _json_types(), "headers": header_pairs()}


SCHEMA = PluginSchema(
    name="response-transformer",
    priority=800,
    config=record(
        {
            "remove": record({"json": names(), "headers": header_names()}),
            "rename": record({"json": pairs(), "headers": header_pairs()}),
            "replace": record(_changes()),
            "add": record(_changes()),
            "append": record(_changes()),
        }
    ),
)
