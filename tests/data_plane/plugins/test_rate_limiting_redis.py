"""The rate-limiting plugin with policy redis, against the Redis on 6379.

Two data plane nodes with the same config share one budget; a node whose
Redis is down lets requests through (fault_tolerant) or answers 500.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
    start_echo,
)
from tests.support.processes import free_port

REDIS = {"host": "127.0.0.1", "port": 6379}


def _limited(name: str, redis: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [
            {
                "name": "rate-limiting",
                "config": {
                    "hour": 3,
                    "limit_by": "header",
                    "header_name": "X-Who",
                    "policy": "redis",
                    "redis": redis,
                    **config,
                },
            }
        ],
    }


def _config(echo: EchoProcess) -> dict[str, Any]:
    down = {"host": "127.0.0.1", "port": free_port()}  # nothing listens there
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    _limited("shared", REDIS),
                    _limited("down", down),
                    _limited("strict", down, fault_tolerant=False),
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DataPlaneProcess, DataPlaneProcess]]:
    with start_echo(tmp_path_factory.mktemp("echo")) as echo:
        config = _config(echo)
        with (
            start_data_plane(tmp_path_factory.mktemp("a"), declarative=config) as a,
            start_data_plane(tmp_path_factory.mktemp("b"), declarative=config) as b,
        ):
            yield a, b


@pytest.fixture
def clients(
    nodes: tuple[DataPlaneProcess, DataPlaneProcess],
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    # Close to the end of an hour, wait for the next one: the limits are
    # per hour, and a test must not see its window end.
    left = 3600 - time.time() % 3600
    if left < 5:
        time.sleep(left)
    a, b = nodes
    with (
        httpx.Client(base_url=a.proxy_url, timeout=deadline(10)) as first,
        httpx.Client(base_url=b.proxy_url, timeout=deadline(10)) as second,
    ):
        yield first, second


def test_two_nodes_share_one_budget(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = clients
    who = {"X-Who": str(uuid.uuid4())}
    replies = [
        first.get("/shared", headers=who),
        second.get("/shared", headers=who),
        first.get("/shared", headers=who),
    ]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in replies] == ["2", "1", "0"]
    refused = second.get("/shared", headers=who)
    assert refused.status_code == 429
    assert refused.json() == {"message": "API rate limit exceeded"}
    assert refused.headers["x-ratelimit-remaining-hour"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert first.get("/shared", headers=who).status_code == 429


def test_a_fault_tolerant_node_lets_requests_through_without_redis(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    first, _ = clients
    who = {"X-Who": str(uuid.uuid4())}
    for _ in range(5):
        reply = first.get("/down", headers=who)
        assert reply.status_code == 200
        assert "ratelimit-remaining" not in reply.headers


def test_without_fault_tolerance_a_redis_failure_is_a_500(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    first, _ = clients
    reply = first.get("/strict", headers={"X-Who": "x"})
    assert reply.status_code == 500
    assert reply.json() == {"message": "An unexpected error occurred"}
