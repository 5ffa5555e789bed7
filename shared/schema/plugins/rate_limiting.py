"""The rate-limiting plugin's config: limits per period, counters and Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidParameter
from shared.schema.fields import Field, join, record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import (
    boolean,
    check_path,
    header_name_field,
    host_field,
    port_field,
    string,
    timeout_field,
)

PERIODS = ("second", "minute", "hour", "day", "month", "year")


def _limits(config: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    given = [(period, config[period]) for period in PERIODS if config.get(period)]
    if not given:
        names = ", ".join(f"'{join(path, p)}'" for p in PERIODS)
        reason = f"at least one of these fields must be non-empty: {names}"
        return [InvalidParameter(path or "config", "at_least_one_of", reason)]

    # A longer period can never allow fewer requests than a shorter one.
    for i, (shorter, low) in enumerate(given):
        for longer, high in given[i + 1 :]:
            if high < low:
                reason = (
                    f"the limit for {longer} ({high}) cannot be lower than "
                    f"the limit for {shorter} ({low})"
                )
                return [InvalidParameter(join(path, longer), "period_order", reason)]
    return []


def _dependencies(config: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    errors = []
    needed = {"header": "header_name", "path": "path"}.get(config["limit_by"])
    if needed is not None and config.get(needed) is None:
        reason = f"required when 'limit_by' is '{config['limit_by']}'"
        errors.append(InvalidParameter(join(path, needed), "required", reason))
    if config["policy"] == "redis" and not config["redis"].get("host"):
        reason = "required when 'policy' is 'redis'"
        errors.append(InvalidParameter(join(path, "redis.host"), "required", reason))
    return errors


def _limit() -> Field:
    return Field("number", gt=0)


REDIS = record(
    {
        "host": host_field(),
        "port": port_field(default=6379),
        "timeout": timeout_field(2000),
        "username": string(),
        "password": Field("string", secret=True),
        "database": Field("integer", default=0),
        "ssl": boolean(False),
        "ssl_verify": boolean(False),
        "server_name": host_field(),
    }
)

SCHEMA = PluginSchema(
    name="rate-limiting",
    priority=910,
    config=record(
        {
            **{period: _limit() for period in PERIODS},
            "limit_by": Field(
                "string",
                required=True,
                default="consumer",
                one_of=("consumer", "credential", "ip", "service", "header", "path"),
            ),
            "header_name": header_name_field(),
            "path": string(checks=(("path", check_path),)),
            "policy": Field(
                "string",
                required=True,
                default="local",
                one_of=("local", "redis"),
                one_of_reason=(
                    "expected one of: local, redis (hybrid mode has no "
                    "'cluster' policy: data plane nodes have no database)"
                ),
            ),
            "fault_tolerant": boolean(True),
            "hide_client_headers": boolean(False),
            "error_code": Field("number", required=True, default=429, gt=0),
            "error_message": Field(
                "string", required=True, default="API rate limit exceeded"
            ),
            "sync_rate": Field("number", required=True, default=-1),
            "redis": REDIS,
        },
        _limits,
        _dependencies,
    ),
)
