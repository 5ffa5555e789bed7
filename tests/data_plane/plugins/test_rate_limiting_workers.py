"""The rate-limiting plugin's `local` policy on a node with two proxy workers.

Every answer names the worker process that made it: correlation-id's
`tracker` ids carry the pid, and the plugin runs before rate-limiting, so
a refusal carries one too. Requests go on new connections, which the
kernel spreads over both workers. Each test counts under its own
identifier, with limits per hour, so that a window never ends within a
test.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import httpx
import pytest

from data_plane.plugins.rate_limiting import SYNC_INTERVAL, NodeTotals
from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
)
from tests.support.waiting import eventually

# Long enough for a worker's report and the node's totals to go round.
PACE = deadline(SYNC_INTERVAL * 4)
# Tries before a test gives up waiting for the kernel to pick a worker:
# each new connection goes to either, so missing one is 2 ** -TRIES likely.
TRIES = 40


class Answer(NamedTuple):
    status: int
    remaining: str | None
    pid: int


def _limited(name: str, hour: int) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [
            {
                "name": "rate-limiting",
                "config": {"hour": hour, "limit_by": "header", "header_name": "X-Who"},
            }
        ],
    }


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    config = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    _limited("ten", 10),
                    _limited("twenty", 20),
                    _limited("thirty", 30),
                ],
            }
        ],
        "plugins": [
            {
                "name": "correlation-id",
                "config": {"generator": "tracker", "echo_downstream": True},
            }
        ],
    }
    with start_data_plane(
        tmp_path_factory.mktemp("dp"), declarative=config, workers="2"
    ) as process:
        eventually(lambda: _serving(process))
        yield process


@pytest.fixture
def client(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    # Close to the end of an hour, wait for the next one.
    left = 3600 - time.time() % 3600
    if left < 10:
        time.sleep(left)
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        yield http


def _serving(node: DataPlaneProcess) -> list[dict[str, Any]]:
    workers: list[dict[str, Any]] = node.status()["workers"]
    return workers if all(w["state"] == "serving" for w in workers) else []


def _who() -> dict[str, str]:
    return {"X-Who": str(uuid.uuid4())}


def _get(client: httpx.Client, path: str, who: dict[str, str]) -> Answer:
    """Send one request on a new connection; say who answered and how."""
    reply = client.get(path, headers=who | {"Connection": "close"})
    # <host>-<pid>-<counter>-<time>; the host may hold dashes.
    pid = int(reply.headers["kong-request-id"].rsplit("-", 3)[1])
    return Answer(reply.status_code, reply.headers.get("ratelimit-remaining"), pid)


def _paced(client: httpx.Client, path: str, who: dict[str, str]) -> Answer:
    answer = _get(client, path, who)
    time.sleep(PACE)
    return answer


def _both_refuse(client: httpx.Client, path: str, who: dict[str, str]) -> None:
    """Send requests until each worker has refused one; none may pass."""
    refused_by: set[int] = set()
    for _ in range(TRIES):
        answer = _get(client, path, who)
        assert answer.status == 429, answer
        assert answer.remaining == "0", answer
        refused_by.add(answer.pid)
        if len(refused_by) == 2:
            return
    pytest.fail(f"one worker answered all {TRIES} requests")


@pytest.mark.slow
def test_paced_requests_count_down_one_budget_for_the_node(
    client: httpx.Client,
) -> None:
    who = _who()
    answers = [_paced(client, "/twenty", who) for _ in range(20)]
    assert [a.status for a in answers] == [200] * 20
    assert [a.remaining for a in answers] == [str(n) for n in range(19, -1, -1)]
    assert len({a.pid for a in answers}) == 2, "one worker answered all"
    _both_refuse(client, "/twenty", who)


def _burst(
    node: DataPlaneProcess, path: str, who: dict[str, str], n: int
) -> Counter[int]:
    """Send `n` requests at once from 8 threads; count the admitted per worker."""

    def one(_: int) -> Answer:
        with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
            return _get(http, path, who)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(n)))
    assert {a.status for a in answers} <= {200, 429}
    return Counter(a.pid for a in answers if a.status == 200)


@pytest.mark.slow
def test_a_burst_passes_the_limit_and_at_most_the_limit_per_worker(
    node: DataPlaneProcess, client: httpx.Client
) -> None:
    """Without pacing a node may pass more than the limit, within the bound.

    Each worker counts its own admissions exactly, so it stops at the limit
    by itself: with two workers the node passes at most twice the limit. It
    never refuses before the limit is reached.
    """
    admitted = _burst(node, "/ten", _who(), 60)
    assert 10 <= sum(admitted.values()) <= 2 * 10, admitted
    assert max(admitted.values()) <= 10, admitted


@pytest.mark.slow
def test_one_interval_after_a_burst_every_worker_refuses(
    node: DataPlaneProcess, client: httpx.Client
) -> None:
    # 15 requests over two workers: most often neither takes 10 of its
    # own, and both refuse only because each heard of the other's.
    who = _who()
    admitted = _burst(node, "/ten", who, 15)
    assert sum(admitted.values()) >= 10, admitted
    assert max(admitted.values()) <= 10, admitted
    time.sleep(PACE)
    _both_refuse(client, "/ten", who)


@pytest.mark.slow
def test_a_restarted_worker_starts_from_the_node_wide_count(
    client: httpx.Client, node: DataPlaneProcess
) -> None:
    who = _who()
    before = [_paced(client, "/thirty", who) for _ in range(8)]
    assert [a.remaining for a in before] == [str(n) for n in range(29, 21, -1)]
    victim = _serving(node)[0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> int | None:
        workers = _serving(node)
        if workers and workers[0]["pid"] != victim["pid"]:
            return int(workers[0]["pid"])
        return None

    fresh_pid: int = eventually(replaced)
    remaining = 21
    for _ in range(TRIES // 2):
        answer = _paced(client, "/thirty", who)
        assert (answer.status, answer.remaining) == (200, str(remaining)), answer
        remaining -= 1
        if answer.pid == fresh_pid:
            return
    pytest.fail(f"the restarted worker answered none of {TRIES // 2} requests")


# The node's sums, on their own


def test_node_totals_sum_each_workers_latest_count_and_give_its_share() -> None:
    totals, start = NodeTotals(), int(time.time()) // 3600 * 3600
    key = ["route", "service", "who", "hour"]
    totals.add(1, [[*key, start, 3]])
    totals.add(2, [[*key, start, 4]])
    totals.add(1, [[*key, start, 5]])
    assert totals.changed([1, 2]) == [[*key, start, 9, [5, 4]]]
    assert totals.changed([1, 2]) == []
    # The same report again changes no count.
    totals.add(2, [[*key, start, 4]])
    assert totals.changed([1, 2]) == [[*key, start, 9, [5, 4]]]


def test_node_totals_keep_what_an_exited_worker_counted() -> None:
    totals, start = NodeTotals(), int(time.time()) // 3600 * 3600
    key = ["route", "service", "who", "hour"]
    totals.add(1, [[*key, start, 3]])
    totals.add(2, [[*key, start, 4]])
    # Worker 2 exited; worker 3 took its slot and counts from zero.
    assert totals.current([1, 3]) == [[*key, start, 7, [3, 0]]]


def test_node_totals_drop_ended_windows_and_start_new_ones_at_zero() -> None:
    totals, start = NodeTotals(), int(time.time()) // 86400 * 86400
    key = ["route", "service", "who", "day"]
    totals.add(1, [[*key, start - 86400, 8]])
    assert totals.current([1]) == []
    totals.add(1, [[*key, start, 2]])
    totals.add(2, [[*key, start - 86400, 5]])
    assert totals.current([1, 2]) == [[*key, start, 2, [2, 0]]]
