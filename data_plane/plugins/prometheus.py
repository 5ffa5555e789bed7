"""Count each finished exchange into the process's Prometheus registry.

Kong's prometheus plugin records in its log phase, per service and route:
the requests by status code and source (`status_code_metrics`), three
latency histograms (`latency_metrics`) and the bytes in and out
(`bandwidth_metrics`), each with the consumer's name when `per_consumer`
is set. Nothing is recorded for a route without a service. The node-level
metrics and the text format are :mod:`data_plane.metrics`' and the status
API's; a route without the plugin costs nothing.

`upstream_health_metrics` and `ai_metrics` are accepted and export nothing:
Portico has neither upstream targets with health checks nor AI plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_plane.metrics import REGISTRY, RouteSeries
from data_plane.plugins.base import ConfigIndex, RequestContext, Served


class Prometheus:
    """One prometheus plugin entity: which metrics its routes record."""

    name = "prometheus"
    priority = 13

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self.per_consumer = bool(config.get("per_consumer"))
        self.status_codes = bool(config.get("status_code_metrics"))
        self.latencies = bool(config.get("latency_metrics"))
        self.bandwidth = bool(config.get("bandwidth_metrics"))
        # Route id -> its series: found on the route's first request, then
        # one dict lookup. Built per config, like the plugin itself.
        self._series: dict[str, RouteSeries] = {}

    def access(self, ctx: RequestContext) -> None:
        """Let the request through: the plugin only records, once it is over."""
        return None

    def log(self, ctx: RequestContext, served: Served) -> None:
        """Count the finished exchange into its route's series."""
        series = self._series.get(ctx.route_id)
        if series is None:
            if served.labels is None:
                return  # Kong records nothing for a route without a service
            series = self._series[ctx.route_id] = REGISTRY.route(*served.labels)
        consumer = ""
        if self.per_consumer and ctx.consumer is not None:
            found = ctx.consumer.get("username") or ctx.consumer.get("custom_id")
            consumer = str(found or "")

        if self.status_codes:
            source = "service" if served.by_upstream else "kong"
            key = (served.status, source, consumer)
            requests = series.requests
            requests[key] = requests.get(key, 0) + 1

        if self.latencies:
            series.total.observe(served.request_ms)
            series.kong.observe(served.portico_ms)
            if served.upstream_ms is not None:
                series.upstream.observe(served.upstream_ms)

        if self.bandwidth:
            bandwidth = series.bandwidth
            if served.received:
                key_in = ("ingress", consumer)
                bandwidth[key_in] = bandwidth.get(key_in, 0) + served.received
            if served.sent:
                key_out = ("egress", consumer)
                bandwidth[key_out] = bandwidth.get(key_out, 0) + served.sent
