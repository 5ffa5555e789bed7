"""The prometheus plugin through real nodes, scraped on their status API."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from data_plane.metrics import KONG_BUCKETS, UPSTREAM_BUCKETS
from tests.conftest import deadline
from tests.support.dataplane import (
    DataPlaneProcess,
    EchoProcess,
    start_data_plane,
)
from tests.support.waiting import eventually

_EVERYTHING = {
    "status_code_metrics": True,
    "latency_metrics": True,
    "bandwidth_metrics": True,
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def scrape(node: DataPlaneProcess) -> list[Sample]:
    """Return the samples of the node's `GET /metrics`, checking its format."""
    with urllib.request.urlopen(node.status_url + "/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        assert found is not None, line
        name, labels, value = found.groups()
        samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """Return the sum of the samples of `name` that have all of `labels`."""
    return sum(
        number
        for found, have, number in samples
        if found == name and all(have.get(k) == v for k, v in labels.items())
    )


def routes_of(samples: list[Sample]) -> set[str]:
    """Return the route labels that any sample carries."""
    return {labels["route"] for _, labels, _ in samples if "route" in labels}


def _prometheus(**config: Any) -> dict[str, Any]:
    return {"name": "prometheus", "config": config}


def _config(echo: EchoProcess) -> dict[str, Any]:
    return {
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [
                    {
                        "name": "counted",
                        "paths": ["/counted"],
                        "plugins": [_prometheus(**_EVERYTHING)],
                    },
                    {"name": "plain", "paths": ["/plain"]},
                    {
                        "name": "codes-only",
                        "paths": ["/codes-only"],
                        "plugins": [_prometheus(status_code_metrics=True)],
                    },
                    {
                        "name": "terminated",
                        "paths": ["/terminated"],
                        "plugins": [
                            _prometheus(status_code_metrics=True),
                            {
                                "name": "request-termination",
                                "config": {"status_code": 503},
                            },
                        ],
                    },
                    {
                        "name": "keyed",
                        "paths": ["/keyed"],
                        "plugins": [
                            _prometheus(per_consumer=True, **_EVERYTHING),
                            {"name": "key-auth"},
                        ],
                    },
                    {
                        "name": "slow",
                        "paths": ["/slow"],
                        "plugins": [_prometheus(latency_metrics=True)],
                    },
                    {
                        "name": "by-consumer",
                        "paths": ["/by-consumer"],
                        "plugins": [{"name": "key-auth"}],
                    },
                ],
            },
            {
                # The host names the service: it has no name.
                "host": "127.0.0.1",
                "port": echo.port,
                "routes": [
                    {"name": "svc-a", "paths": ["/svc-a"]},
                    {"paths": ["/svc-b"], "id": "5d8c1c4e-2f3b-4a57-9c1d-0e6f7a8b9c0d"},
                ],
                "plugins": [_prometheus(status_code_metrics=True)],
            },
        ],
        "routes": [
            {
                "name": "orphan",
                "paths": ["/orphan"],
                "plugins": [_prometheus(status_code_metrics=True)],
            }
        ],
        "consumers": [
            {"username": "alice", "keyauth_credentials": [{"key": "alice-key"}]},
            {
                "username": "bob",
                "keyauth_credentials": [{"key": "bob-key"}],
                "plugins": [_prometheus(per_consumer=True, status_code_metrics=True)],
            },
        ],
    }


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    with start_data_plane(
        tmp_path_factory.mktemp("dp"), declarative=_config(echo)
    ) as process:
        yield process


@pytest.fixture
def http(node: DataPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as client:
        yield client


def test_metrics_are_prometheus_text_with_the_node_figures(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/plain").status_code == 200
    samples = scrape(node)
    node_id = node.status()["node_id"]
    assert value(samples, "kong_node_info", node_id=node_id) == 1
    assert value(samples, "kong_nginx_connections_total", state="accepted") >= 1
    assert value(samples, "kong_nginx_requests_total", node_id=node_id) >= 1
    assert value(samples, "kong_data_plane_config_hash") > 0


def test_requests_are_counted_by_service_route_code_and_source(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    labels = {"service": "echo", "route": "counted", "workspace": "default"}
    before = scrape(node)
    for path in ("/counted", "/counted/request", "/counted/status/404"):
        http.get(path)
    after = scrape(node)

    def added(code: str) -> float:
        name = "kong_http_requests_total"
        return value(after, name, code=code, source="service", **labels) - value(
            before, name, code=code, source="service", **labels
        )

    assert added("200") == 2
    assert added("404") == 1


def test_a_response_a_plugin_made_counts_with_source_kong(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/terminated").status_code == 503
    samples = scrape(node)
    labels = {"route": "terminated", "code": "503"}
    assert value(samples, "kong_http_requests_total", source="kong", **labels) >= 1
    assert value(samples, "kong_http_requests_total", source="service", **labels) == 0


def test_a_route_without_the_plugin_is_not_counted(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    for _ in range(3):
        assert http.get("/plain").status_code == 200
    assert "plain" not in routes_of(scrape(node))


def test_a_route_without_a_service_is_not_counted(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/orphan").status_code == 503
    assert "orphan" not in routes_of(scrape(node))


def test_a_service_plugin_counts_every_route_of_the_service(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/svc-a").status_code == 200
    assert http.get("/svc-b").status_code == 200
    samples = scrape(node)
    # Kong's labels: the service's host when it has no name, the route's
    # id when it has none.
    service = {"service": "127.0.0.1", "code": "200"}
    assert value(samples, "kong_http_requests_total", route="svc-a", **service) >= 1
    route_b = "5d8c1c4e-2f3b-4a57-9c1d-0e6f7a8b9c0d"
    assert value(samples, "kong_http_requests_total", route=route_b, **service) >= 1


def test_only_the_metrics_a_plugin_enables_are_recorded(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/codes-only").status_code == 200
    assert http.get("/slow").status_code == 200
    samples = scrape(node)
    codes = {name for name, labels, _ in samples if labels.get("route") == "codes-only"}
    assert codes == {"kong_http_requests_total"}
    slow = {name for name, labels, _ in samples if labels.get("route") == "slow"}
    assert "kong_http_requests_total" not in slow
    assert "kong_bandwidth_bytes" not in slow
    assert "kong_upstream_latency_ms_count" in slow


def test_latency_histograms_have_kongs_buckets_and_observe_each_request(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/slow/delay/40").status_code == 200
    samples = scrape(node)
    route = {"service": "echo", "route": "slow", "workspace": "default"}
    for name, bounds in (
        ("kong_kong_latency_ms", KONG_BUCKETS),
        ("kong_upstream_latency_ms", UPSTREAM_BUCKETS),
        ("kong_request_latency_ms", UPSTREAM_BUCKETS),
    ):
        buckets = [
            (labels["le"], number)
            for found, labels, number in samples
            if found == name + "_bucket" and labels.items() >= route.items()
        ]
        assert [le for le, _ in buckets] == [*map(str, bounds), "+Inf"]
        counts = [number for _, number in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        assert counts[-1] == value(samples, name + "_count", **route) >= 1
    # The upstream took at least 40 ms to answer: not in the 25 ms bucket.
    upstream = value(samples, "kong_upstream_latency_ms_sum", **route)
    assert upstream >= 40
    assert value(samples, "kong_request_latency_ms_sum", **route) >= upstream
    early = value(samples, "kong_upstream_latency_ms_bucket", le="25", **route)
    assert early < value(samples, "kong_upstream_latency_ms_count", **route)


def test_bandwidth_counts_the_bytes_in_and_out(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    labels = {"route": "counted", "consumer": ""}
    before = scrape(node)
    reply = http.post("/counted/anything", content=b"x" * 5000)
    after = scrape(node)

    def added(direction: str) -> float:
        name = "kong_bandwidth_bytes"
        return value(after, name, direction=direction, **labels) - value(
            before, name, direction=direction, **labels
        )

    # The body and the head; the head is at least its request line.
    assert 5000 + len("POST /counted/anything HTTP/1.1") < added("ingress") < 6000
    assert len(reply.content) < added("egress") < len(reply.content) + 2000


def test_per_consumer_labels_requests_with_the_consumer(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    assert http.get("/keyed", headers={"apikey": "alice-key"}).status_code == 200
    assert http.get("/keyed").status_code == 401
    samples = scrape(node)
    name = "kong_http_requests_total"
    keyed = {"route": "keyed"}
    assert value(samples, name, code="200", consumer="alice", **keyed) >= 1
    assert value(samples, name, code="401", consumer="", source="kong", **keyed) >= 1
    assert value(samples, "kong_bandwidth_bytes", consumer="alice", **keyed) > 0


def test_a_consumer_scoped_plugin_counts_only_that_consumer(
    node: DataPlaneProcess, http: httpx.Client
) -> None:
    for key in ("alice-key", "bob-key", "bob-key"):
        assert http.get("/by-consumer", headers={"apikey": key}).status_code == 200
    samples = scrape(node)
    name, route = "kong_http_requests_total", {"route": "by-consumer"}
    assert value(samples, name, consumer="bob", **route) == 2
    assert value(samples, name, **route) == 2


def test_a_client_that_leaves_before_the_answer_counts_as_499(
    node: DataPlaneProcess,
) -> None:
    with httpx.Client(base_url=node.proxy_url, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/counted/delay/3000")
    eventually(lambda: value(scrape(node), "kong_http_requests_total", code="499") >= 1)


def test_the_status_api_refuses_other_methods_on_metrics(
    node: DataPlaneProcess,
) -> None:
    reply = httpx.post(node.status_url + "/metrics")
    assert reply.status_code == 405


# With several worker processes


@pytest.fixture(scope="module")
def workers_node(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoProcess
) -> Iterator[DataPlaneProcess]:
    config = {
        "services": [
            {
                "name": "echo",
                "url": echo.url,
                "routes": [{"name": "r", "paths": ["/r"]}],
            }
        ],
        "plugins": [_prometheus(**_EVERYTHING)],
    }
    with start_data_plane(
        tmp_path_factory.mktemp("dp-workers"), declarative=config, workers="2"
    ) as process:
        yield process


def _serving(node: DataPlaneProcess) -> list[dict[str, Any]]:
    workers: list[dict[str, Any]] = node.status()["workers"]
    return workers if all(w["state"] == "serving" for w in workers) else []


def _spread(node: DataPlaneProcess, count: int) -> None:
    """Send `count` requests, each on a new connection, so workers share them."""
    with httpx.Client(base_url=node.proxy_url, timeout=deadline(10)) as http:
        for _ in range(count):
            reply = http.get("/r", headers={"Connection": "close"})
            assert reply.status_code == 200


@pytest.mark.slow
def test_with_workers_a_global_plugin_counts_node_wide_totals(
    workers_node: DataPlaneProcess,
) -> None:
    name, route = "kong_http_requests_total", {"route": "r", "code": "200"}
    before = value(scrape(workers_node), name, **route)
    _spread(workers_node, 30)
    samples = scrape(workers_node)
    assert value(samples, name, **route) - before == 30
    assert value(samples, "kong_request_latency_ms_count", route="r") >= 30
    # Both processes answered some: the totals span them.
    served = [
        w["counters"]["requests"] for w in eventually(lambda: _serving(workers_node))
    ]
    assert len(served) == 2 and min(served) > 0, served


@pytest.mark.slow
def test_with_workers_a_restarted_worker_keeps_the_counts_scraped_before(
    workers_node: DataPlaneProcess,
) -> None:
    name, route = "kong_http_requests_total", {"route": "r", "code": "200"}
    _spread(workers_node, 10)
    counted = value(scrape(workers_node), name, **route)
    victim = eventually(lambda: _serving(workers_node))[0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        worker = _serving(workers_node)[:1]
        return bool(worker) and worker[0]["pid"] != victim["pid"]

    eventually(replaced, 20)
    assert value(scrape(workers_node), name, **route) == counted
