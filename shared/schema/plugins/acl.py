"""The acl plugin's config: allow or deny consumers by their ACL groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidParameter
from shared.schema.fields import join, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean, string_array


def _allow_or_deny(config: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    allow, deny = config.get("allow"), config.get("deny")
    if bool(allow) == bool(deny):
        reason = (
            "exactly one of these fields must be non-empty: "
            f"'{join(path, 'allow')}', '{join(path, 'deny')}'"
        )
        return [InvalidParameter(join(path, "allow"), "only_one_of", reason)]
    return []


SCHEMA = PluginSchema(
    name="acl",
    priority=950,
    no_consumer=True,
    config=record(
        {
            "allow": string_array(),
            "deny": string_array(),
            "hide_groups_header": boolean(False),
            "always_use_authenticated_groups": boolean(False),
            "include_consumer_groups": boolean(False),
        },
        _allow_or_deny,
    ),
)
