"""The rate-limiting plugin's config rules."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema.fields import Checker
from shared.schema.plugins import PLUGIN_SCHEMAS

SCHEMA = PLUGIN_SCHEMAS["rate-limiting"]


def _config(value: dict[str, Any]) -> dict[str, Any]:
    checker = Checker()
    config = checker.check(SCHEMA.config, value, "config")
    if checker.errors:
        raise ValidationError("schema violation", checker.errors)
    assert isinstance(config, dict)
    return config


def _refused(value: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        _config(value)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def test_defaults_follow_kong() -> None:
    config = _config({"minute": 5})
    assert config["limit_by"] == "consumer"
    assert config["policy"] == "local"
    assert config["fault_tolerant"] is True
    assert config["hide_client_headers"] is False
    assert config["error_code"] == 429
    assert config["error_message"] == "API rate limit exceeded"
    assert config["sync_rate"] == -1
    assert config["redis"]["port"] == 6379
    assert config["redis"]["timeout"] == 2000
    assert config["redis"]["database"] == 0


def test_at_least_one_limit_is_required() -> None:
    assert _refused({}) == {"config": "at_least_one_of"}


def test_a_limit_must_be_positive() -> None:
    assert _refused({"minute": 0}) == {"config.minute": "gt"}


def test_a_longer_period_cannot_allow_less_than_a_shorter_one() -> None:
    assert _refused({"second": 10, "hour": 5}) == {"config.hour": "period_order"}


def test_increasing_limits_are_accepted() -> None:
    assert _config({"second": 1, "minute": 10, "hour": 100})["hour"] == 100


def test_the_redis_policy_needs_a_host() -> None:
    assert _refused({"minute": 5, "policy": "redis"}) == {
        "config.redis.host": "required"
    }


def test_the_cluster_policy_is_refused_in_hybrid_mode() -> None:
    assert _refused({"minute": 5, "policy": "cluster"}) == {"config.policy": "one_of"}


def test_limiting_by_header_needs_a_header_name() -> None:
    assert _refused({"minute": 5, "limit_by": "header"}) == {
        "config.header_name": "required"
    }


def test_a_redis_host_must_be_a_hostname() -> None:
    value = {"minute": 5, "policy": "redis", "redis": {"host": "a b"}}
    assert _refused(value) == {"config.redis.host": "host"}
