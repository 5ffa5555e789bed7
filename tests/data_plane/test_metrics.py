"""Prometheus counters: buckets, sums across processes, text format."""

from __future__ import annotations

import orjson

from data_plane.metrics import (
    KONG_BUCKETS,
    Histogram,
    Registry,
    add_figures,
    render,
)


def _render(registry: Registry, figures: dict[str, int] | None = None) -> str:
    return render(
        registry, figures or {}, node_id="n1", version="0.1.0", config_hash=None
    )


def test_a_value_on_a_bound_counts_in_that_bound_bucket() -> None:
    histogram = Histogram(KONG_BUCKETS)
    for value in (0, 1, 1.5, 1000, 1000.5):
        histogram.observe(value)
    assert histogram.counts[0] == 2  # 0 and 1: le="1"
    assert histogram.counts[1] == 1  # 1.5: le="2"
    assert histogram.counts[len(KONG_BUCKETS) - 1] == 1  # 1000: le="1000"
    assert histogram.counts[-1] == 1  # above every bound: +Inf
    assert histogram.sum == 2003


def test_buckets_are_rendered_cumulative_with_count_and_sum() -> None:
    registry = Registry()
    series = registry.route("svc", "rt")
    for value in (0.5, 3, 3, 2000):
        series.kong.observe(value)
    text = _render(registry)
    labels = 'service="svc",route="rt",workspace="default"'
    assert f'kong_kong_latency_ms_bucket{{{labels},le="1"}} 1\n' in text
    assert f'kong_kong_latency_ms_bucket{{{labels},le="5"}} 3\n' in text
    assert f'kong_kong_latency_ms_bucket{{{labels},le="1000"}} 3\n' in text
    assert f'kong_kong_latency_ms_bucket{{{labels},le="+Inf"}} 4\n' in text
    assert f"kong_kong_latency_ms_count{{{labels}}} 4\n" in text
    assert f"kong_kong_latency_ms_sum{{{labels}}} 2006.5\n" in text
    # A histogram nothing was observed in is left out.
    assert "kong_upstream_latency_ms" not in text


def test_dumps_of_several_processes_add_up() -> None:
    first, second = Registry(), Registry()
    for registry, count in ((first, 2), (second, 3)):
        series = registry.route("svc", "rt")
        series.requests[(200, "service", "")] = count
        series.bandwidth[("egress", "")] = 100 * count
        series.total.observe(30)
    second.route("svc", "other").requests[(404, "kong", "alice")] = 1

    node = Registry()
    for registry in (first, second):
        # Dumps cross the worker channel as JSON.
        node.absorb(orjson.loads(orjson.dumps(registry.dump())))
    merged = node.route("svc", "rt")
    assert merged.requests == {(200, "service", ""): 5}
    assert merged.bandwidth == {("egress", ""): 500}
    assert sum(merged.total.counts) == 2 and merged.total.sum == 60
    assert node.route("svc", "other").requests == {(404, "kong", "alice"): 1}


def test_node_figures_add_up_over_processes() -> None:
    total: dict[str, int] = {}
    add_figures(total, {"accepted": 2, "active": 1, "requests": 5})
    add_figures(total, {"accepted": 3, "active": 0, "requests": 4})
    assert total["accepted"] == 5 and total["active"] == 1
    assert total["requests"] == 9 and total["waiting"] == 0


def test_label_values_are_escaped() -> None:
    registry = Registry()
    series = registry.route('we"ird\\svc', "line\nbreak")
    series.requests[(200, "service", "")] = 1
    text = _render(registry)
    assert 'service="we\\"ird\\\\svc",route="line\\nbreak"' in text


def test_node_metrics_are_rendered_without_any_route_series() -> None:
    figures = {"accepted": 4, "handled": 4, "requests": 9, "active": 2}
    figures |= {"reading": 0, "writing": 1, "waiting": 1}
    text = _render(Registry(), figures)
    assert 'kong_node_info{node_id="n1",version="0.1.0"} 1\n' in text
    node = 'node_id="n1",subsystem="http"'
    assert f'kong_nginx_connections_total{{{node},state="accepted"}} 4\n' in text
    assert f'kong_nginx_connections_total{{{node},state="total"}} 9\n' in text
    assert f'kong_nginx_connections_total{{{node},state="writing"}} 1\n' in text
    assert f"kong_nginx_requests_total{{{node}}} 9\n" in text
    assert "kong_http_requests_total" not in text
    # Every sample belongs to a family announced with HELP and TYPE.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert f"# TYPE {name} " in text, line


def test_the_config_hash_is_one_number() -> None:
    text = render(
        Registry(), {}, node_id="n1", version="0.1.0", config_hash="0" * 31 + "f"
    )
    assert 'kong_data_plane_config_hash{node_id="n1"} 15\n' in text
