"""Keep a process's Prometheus counters and render a node's in text format.

The prometheus plugin counts into :data:`REGISTRY`, one per process, which
outlives configs as Kong's shared dictionary does: a config change never
resets a counter. Counting is a few dict and int operations per request;
the text is made only when ``GET /metrics`` is scraped.

A registry crosses processes as a JSON-able dump (:meth:`Registry.dump`);
the node absorbs its workers' dumps into a fresh registry and renders the
sum, so that ``/metrics`` shows node-wide totals. Metric names and labels
are Kong's (``kong_http_requests_total``, ``kong_kong_latency_ms``, ...), so
that dashboards made for Kong read them unchanged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Kong's bucket boundaries, in milliseconds: its own latency is small, the
# upstream's and the whole request's can be long.
KONG_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000)
UPSTREAM_BUCKETS = (
    25,
    50,
    80,
    100,
    250,
    400,
    700,
    1000,
    2000,
    5000,
    10000,
    30000,
    60000,
)
# Portico serves no workspaces; Kong's label is kept for its dashboards.
WORKSPACE = "default"

# The node's connection figures: running totals, then gauges of the moment.
NODE_TOTALS = ("accepted", "handled", "requests")
NODE_GAUGES = ("active", "reading", "writing", "waiting")


class Histogram:
    """Count observations into fixed buckets, and keep their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[int, ...]) -> None:
        self.bounds = bounds
        # One count per bound, then the one above every bound (+Inf); each
        # observation lands in exactly one: made cumulative when rendered.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose bound is not below it."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def dump(self) -> list[float]:
        """Return the counts followed by the sum."""
        return [*self.counts, self.sum]

    def absorb(self, dumped: list[float]) -> None:
        """Add a dump of a histogram with the same bounds."""
        counts = self.counts
        if len(dumped) != len(counts) + 1:
            return  # another version's buckets: not comparable
        for index in range(len(counts)):
            counts[index] += int(dumped[index])
        self.sum += dumped[-1]


class RouteSeries:
    """The counters of one service/route pair, as Kong labels them."""

    __slots__ = (
        "service",
        "route",
        "requests",
        "bandwidth",
        "kong",
        "upstream",
        "total",
    )

    def __init__(self, service: str, route: str) -> None:
        self.service = service
        self.route = route
        # (status code, "service" or "kong", consumer) -> requests
        self.requests: dict[tuple[int, str, str], int] = {}
        # ("ingress" or "egress", consumer) -> bytes
        self.bandwidth: dict[tuple[str, str], int] = {}
        self.kong = Histogram(KONG_BUCKETS)
        self.upstream = Histogram(UPSTREAM_BUCKETS)
        self.total = Histogram(UPSTREAM_BUCKETS)


class Registry:
    """Every route series of a process (or, once absorbed, of a node)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], RouteSeries] = {}

    def route(self, service: str, route: str) -> RouteSeries:
        """Return the series of a service/route pair, made on first use."""
        found = self.series.get((service, route))
        if found is None:
            found = self.series[(service, route)] = RouteSeries(service, route)
        return found

    def dump(self) -> list[dict[str, Any]]:
        """Return every series as JSON-able data, for :meth:`absorb`."""
        return [
            {
                "service": series.service,
                "route": series.route,
                "requests": [[*key, count] for key, count in series.requests.items()],
                "bandwidth": [[*key, count] for key, count in series.bandwidth.items()],
                "kong": series.kong.dump(),
                "upstream": series.upstream.dump(),
                "total": series.total.dump(),
            }
            for series in self.series.values()
        ]

    def absorb(self, dumped: Iterable[Mapping[str, Any]]) -> None:
        """Add the counts of another registry's dump to this one's."""
        for item in dumped:
            series = self.route(str(item["service"]), str(item["route"]))
            requests = series.requests
            for code, source, consumer, count in item["requests"]:
                key = (int(code), str(source), str(consumer))
                requests[key] = requests.get(key, 0) + int(count)
            bandwidth = series.bandwidth
            for direction, consumer, count in item["bandwidth"]:
                pair = (str(direction), str(consumer))
                bandwidth[pair] = bandwidth.get(pair, 0) + int(count)
            series.kong.absorb(item["kong"])
            series.upstream.absorb(item["upstream"])
            series.total.absorb(item["total"])


REGISTRY = Registry()
"""The counters of this process, shared by every prometheus plugin instance."""


def add_figures(total: dict[str, int], figures: Mapping[str, Any]) -> None:
    """Add one process's connection figures to the node's `total`."""
    for name in (*NODE_TOTALS, *NODE_GAUGES):
        total[name] = total.get(name, 0) + int(figures.get(name) or 0)


def render(
    registry: Registry,
    figures: Mapping[str, int],
    *,
    node_id: str,
    version: str,
    config_hash: str | None,
) -> str:
    """Return the node's metrics in Prometheus text exposition format 0.0.4."""
    out: list[str] = []
    node = f'node_id="{_escape(node_id)}"'
    _family(out, "kong_node_info", "gauge", "Kong Node metadata information")
    out.append(f'kong_node_info{{{node},version="{_escape(version)}"}} 1')
    _family(
        out,
        "kong_nginx_connections_total",
        "gauge",
        "Number of connections by subsystem",
    )
    # Kong's states; "total" counts requests, as nginx's statistics do.
    states = {**figures, "total": figures.get("requests", 0)}
    for state in sorted((*NODE_GAUGES, "accepted", "handled", "total")):
        out.append(
            f'kong_nginx_connections_total{{{node},subsystem="http",state="{state}"}} '
            f"{states.get(state, 0)}"
        )
    _family(out, "kong_nginx_requests_total", "gauge", "Number of requests total")
    out.append(
        f'kong_nginx_requests_total{{{node},subsystem="http"}} '
        f"{figures.get('requests', 0)}"
    )
    if config_hash is not None:
        _family(
            out,
            "kong_data_plane_config_hash",
            "gauge",
            "Config hash numeric value of the data plane",
        )
        # The hash as one number, as Kong's control plane reports it.
        value = _number(float(int(config_hash, 16)))
        out.append(f"kong_data_plane_config_hash{{{node}}} {value}")

    series = sorted(registry.series.values(), key=lambda s: (s.service, s.route))
    _requests(out, series)
    _histograms(out, series)
    _bandwidth(out, series)
    out.append("")
    return "\n".join(out)


def _requests(out: list[str], all_series: list[RouteSeries]) -> None:
    lines = []
    for series in all_series:
        route = _route_labels(series)
        for (code, source, consumer), count in sorted(series.requests.items()):
            lines.append(
                f'kong_http_requests_total{{{route},code="{code}",source="{source}",'
                f'workspace="{WORKSPACE}",consumer="{_escape(consumer)}"}} {count}'
            )
    if lines:
        _family(
            out,
            "kong_http_requests_total",
            "counter",
            "HTTP status codes per consumer/service/route in Kong",
        )
        out += lines


def _histograms(out: list[str], all_series: list[RouteSeries]) -> None:
    for name, attribute, about in (
        (
            "kong_kong_latency_ms",
            "kong",
            "Latency added by Kong and enabled plugins for each service/route in Kong",
        ),
        (
            "kong_request_latency_ms",
            "total",
            "Total latency incurred during requests for each service/route in Kong",
        ),
        (
            "kong_upstream_latency_ms",
            "upstream",
            "Latency added by upstream response for each service/route in Kong",
        ),
    ):
        lines: list[str] = []
        for series in all_series:
            histogram: Histogram = getattr(series, attribute)
            if any(histogram.counts):
                _histogram(lines, name, _route_labels(series), histogram)
        if lines:
            _family(out, name, "histogram", about)
            out += lines


def _histogram(lines: list[str], name: str, route: str, histogram: Histogram) -> None:
    labels = f'{route},workspace="{WORKSPACE}"'
    running = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        running += count
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {running}')
    running += histogram.counts[-1]
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {running}')
    lines.append(f"{name}_count{{{labels}}} {running}")
    lines.append(f"{name}_sum{{{labels}}} {_number(histogram.sum)}")


def _bandwidth(out: list[str], all_series: list[RouteSeries]) -> None:
    lines = []
    for series in all_series:
        route = _route_labels(series)
        for (direction, consumer), count in sorted(series.bandwidth.items()):
            lines.append(
                f'kong_bandwidth_bytes{{{route},direction="{direction}",'
                f'workspace="{WORKSPACE}",consumer="{_escape(consumer)}"}} {count}'
            )
    if lines:
        _family(
            out,
            "kong_bandwidth_bytes",
            "counter",
            "Total bandwidth (ingress/egress) throughput in bytes",
        )
        out += lines


def _family(out: list[str], name: str, kind: str, about: str) -> None:
    out.append(f"# HELP {name} {about}")
    out.append(f"# TYPE {name} {kind}")


def _route_labels(series: RouteSeries) -> str:
    return f'service="{_escape(series.service)}",route="{_escape(series.route)}"'


def _escape(value: str) -> str:
    # The exposition format escapes backslash, double quote and line feed.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if abs(value) >= 2**53:
        return repr(value)
    # The loop's clock ticks in milliseconds: sums of latencies are whole
    # but for the float error of their subtractions.
    value = round(value, 3)
    return str(int(value)) if value == int(value) else repr(value)
