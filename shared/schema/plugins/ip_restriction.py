"""The ip-restriction plugin's config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidParameter
from shared.schema.fields import Field, join, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import check_ip_or_cidr, string


def _allow_or_deny(config: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    if config.get("allow") is None and config.get("deny") is None:
        reason = (
            "at least one of these fields must be non-empty: "
            f"'{join(path, 'allow')}', '{join(path, 'deny')}'"
        )
        return [InvalidParameter(join(path, "allow"), "at_least_one_of", reason)]
    return []


def _addresses() -> Field:
    return Field("array", elements=string(checks=(("ip_or_cidr", check_ip_or_cidr),)))


SCHEMA = PluginSchema(
    name="ip-restriction",
    priority=990,
    config=record(
        {
            "allow": _addresses(),
            "deny": _addresses(),
            # Kong leaves it unbounded; a status outside HTTP's range cannot
            # be sent, so it is refused here rather than answered with a 500.
            "status": Field("number", between=(100, 599)),
            "message": string(),
        },
        _allow_or_deny,
    ),
)
