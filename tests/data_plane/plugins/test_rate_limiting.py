"""The rate-limiting plugin (policy local) through a real node, as Kong behaves.

Each test counts under its own identifier (a random header value or its
own route), so that tests never share a budget; limits are per hour or
longer, so that a window never ends within a test.
"""

from __future__ import annotations

import calendar
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_plane.plugins.rate_limiting import window_starts
from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
)

ALICE_KEY = "alice-key"
BOB_KEY = "bob-key"


def test_windows_start_on_kongs_utc_boundaries() -> None:
    now = calendar.timegm((2026, 3, 15, 13, 45, 30)) + 0.75
    starts = window_starts(now)
    assert starts == {
        "second": calendar.timegm((2026, 3, 15, 13, 45, 30)),
        "minute": calendar.timegm((2026, 3, 15, 13, 45, 0)),
        "hour": calendar.timegm((2026, 3, 15, 13, 0, 0)),
        "day": calendar.timegm((2026, 3, 15, 0, 0, 0)),
        "month": calendar.timegm((2026, 3, 1, 0, 0, 0)),
        "year": calendar.timegm((2026, 1, 1, 0, 0, 0)),
    }


def _limited(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "rate-limiting", "config": config}],
    }


def _config(echo: EchoProcess) -> dict[str, Any]:
    by_header = {"limit_by": "header", "header_name": "X-Who"}
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    _limited("hourly", hour=3, **by_header),
                    _limited("two", hour=2, day=5, **by_header),
                    _limited(
                        "custom",
                        hour=1,
                        error_code=403,
                        error_message="slow down",
                        **by_header,
                    ),
                    _limited("hidden", hour=1, hide_client_headers=True, **by_header),
                    _limited("by-ip", hour=2),
                    _limited("by-path", hour=1, limit_by="path", path="/by-path/x"),
                    {
                        "name": "tiered",
                        "paths": ["/tiered"],
                        "plugins": [
                            {"name": "key-auth"},
                            {"name": "rate-limiting", "config": {"hour": 3}},
                        ],
                    },
                    {
                        "name": "keyed",
                        "paths": ["/keyed"],
                        "plugins": [
                            {"name": "key-auth"},
                            {"name": "rate-limiting", "config": {"hour": 1}},
                        ],
                    },
                ],
            },
            {
                "name": "shared",
                "url": echo.url,
                "plugins": [
                    {
                        "name": "rate-limiting",
                        "config": {"hour": 2, "limit_by": "service"},
                    }
                ],
                "routes": [
                    {"name": "left", "paths": ["/left"]},
                    {"name": "right", "paths": ["/right"]},
                ],
            },
        ],
        "consumers": [
            {
                "username": "alice",
                "keyauth_credentials": [{"key": ALICE_KEY}],
                "plugins": [
                    {
                        "name": "rate-limiting",
                        "route": {"name": "tiered"},
                        "config": {"hour": 1},
                    }
                ],
            },
            {"username": "bob", "keyauth_credentials": [{"key": BOB_KEY}]},
        ],
    }


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    with start_data_plane(
        tmp_path_factory.mktemp("dp"), declarative=_config(echo)
    ) as dp:
        yield dp


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    # Close to the end of an hour, wait for the next one: every limit here
    # is per hour or longer, and a test must not see its window end.
    left = 3600 - time.time() % 3600
    if left < 5:
        time.sleep(left)
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def _who() -> dict[str, str]:
    return {"X-Who": str(uuid.uuid4())}


def test_a_counted_request_gets_kongs_headers(client: httpx.Client) -> None:
    reply = client.get("/hourly", headers=_who())
    assert reply.status_code == 200
    assert reply.headers["x-ratelimit-limit-hour"] == "3"
    assert reply.headers["x-ratelimit-remaining-hour"] == "2"
    assert reply.headers["ratelimit-limit"] == "3"
    assert reply.headers["ratelimit-remaining"] == "2"
    reset = int(reply.headers["ratelimit-reset"])
    assert 1 <= reset <= 3600
    assert "retry-after" not in reply.headers


def test_the_request_over_the_limit_gets_429_and_retry_after(
    client: httpx.Client,
) -> None:
    who = _who()
    remaining = [
        client.get("/hourly", headers=who).headers["ratelimit-remaining"]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    reply = client.get("/hourly", headers=who)
    assert reply.status_code == 429
    assert reply.json() == {"message": "API rate limit exceeded"}
    assert reply.headers["x-ratelimit-remaining-hour"] == "0"
    assert reply.headers["ratelimit-remaining"] == "0"
    assert reply.headers["retry-after"] == reply.headers["ratelimit-reset"]
    assert 1 <= int(reply.headers["retry-after"]) <= 3600


def test_each_identifier_has_its_own_budget(client: httpx.Client) -> None:
    who = _who()
    for _ in range(3):
        client.get("/hourly", headers=who)
    assert client.get("/hourly", headers=who).status_code == 429
    assert client.get("/hourly", headers=_who()).status_code == 200


def test_the_limit_closest_to_being_reached_is_the_ratelimit_one(
    client: httpx.Client,
) -> None:
    reply = client.get("/two", headers=_who())
    assert reply.headers["x-ratelimit-limit-day"] == "5"
    assert reply.headers["x-ratelimit-remaining-day"] == "4"
    assert reply.headers["x-ratelimit-limit-hour"] == "2"
    assert reply.headers["x-ratelimit-remaining-hour"] == "1"
    assert reply.headers["ratelimit-limit"] == "2"
    assert reply.headers["ratelimit-remaining"] == "1"


def test_error_code_and_message_are_configurable(client: httpx.Client) -> None:
    who = _who()
    assert client.get("/custom", headers=who).status_code == 200
    reply = client.get("/custom", headers=who)
    assert reply.status_code == 403
    assert reply.json() == {"message": "slow down"}


def test_hide_client_headers_sends_none(client: httpx.Client) -> None:
    who = _who()
    first = client.get("/hidden", headers=who)
    refused = client.get("/hidden", headers=who)
    assert first.status_code == 200
    assert refused.status_code == 429
    for reply in (first, refused):
        assert not [name for name in reply.headers if "ratelimit" in name]
        assert "retry-after" not in reply.headers


def test_without_a_consumer_the_client_ip_is_counted(client: httpx.Client) -> None:
    statuses = [client.get("/by-ip", headers=_who()).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_limit_by_path_counts_the_configured_path(client: httpx.Client) -> None:
    assert client.get("/by-path/x").status_code == 200
    assert client.get("/by-path/x").status_code == 429


def test_each_consumer_has_its_own_budget(client: httpx.Client) -> None:
    alice, bob = {"apikey": ALICE_KEY}, {"apikey": BOB_KEY}
    assert client.get("/keyed", headers=alice).status_code == 200
    assert client.get("/keyed", headers=alice).status_code == 429
    assert client.get("/keyed", headers=bob).status_code == 200


def test_a_consumer_scoped_limit_applies_to_that_consumer_only(
    client: httpx.Client,
) -> None:
    alice, bob = {"apikey": ALICE_KEY}, {"apikey": BOB_KEY}
    first = client.get("/tiered", headers=alice)
    assert first.headers["x-ratelimit-limit-hour"] == "1"
    assert client.get("/tiered", headers=alice).status_code == 429
    other = client.get("/tiered", headers=bob)
    assert other.status_code == 200
    assert other.headers["x-ratelimit-limit-hour"] == "3"


def test_limit_by_service_shares_the_budget_between_routes(
    client: httpx.Client,
) -> None:
    assert client.get("/left").status_code == 200
    assert client.get("/right").headers["ratelimit-remaining"] == "0"
    assert client.get("/left").status_code == 429


def test_counters_survive_a_config_reload(
    client: httpx.Client, node: DataPlaneProcess, echo: EchoProcess
) -> None:
    who = _who()
    client.get("/custom", headers=who)
    config = _config(echo)
    config["services"][0]["routes"].append({"name": "extra", "paths": ["/extra"]})
    node.reload(config)
    assert client.get("/custom", headers=who).status_code == 403
