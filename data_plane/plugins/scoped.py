"""Run the instance of a plugin that the authenticated consumer calls for.

Kong resolves a plugin's configuration when its turn comes in the chain,
with the consumer known at that moment: a consumer-scoped instance applies
once an authentication plugin (which runs earlier, by its PRIORITY) has
identified the consumer. Which instance each consumer gets on a route is
decided when the config is compiled; a request makes one dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping

from data_plane.plugins.base import (
    Deferred,
    HeaderRewrite,
    LocalResponse,
    Plugin,
    RequestContext,
    Served,
)


class ConsumerScoped:
    """Stand in a route's chain for a plugin configured for some consumers.

    `by_consumer` maps consumer ids to the instance they get; any other
    request, or one with no consumer yet, gets `default` (None: none runs).
    """

    __slots__ = (
        "name",
        "priority",
        "responds",
        "changes_bodies",
        "logs",
        "_by_consumer",
        "_default",
    )

    def __init__(
        self,
        name: str,
        by_consumer: Mapping[str, Plugin],
        default: Plugin | None,
    ) -> None:
        assert by_consumer, "a consumer-scoped step needs consumers"
        self.name = name
        self.priority = next(iter(by_consumer.values())).priority
        self._by_consumer = by_consumer  # shared between routes: never changed
        self._default = default
        # Whether any instance has a response phase (the step then has one).
        instances = [*by_consumer.values(), *([default] if default else [])]
        self.responds = any(hasattr(p, "header_filter") for p in instances)
        self.changes_bodies = any(hasattr(p, "body_filter") for p in instances)
        self.logs = any(hasattr(p, "log") for p in instances)

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Run the instance for the consumer identified so far, if any."""
        consumer = ctx.consumer
        plugin = self._default
        if consumer is not None:
            plugin = self._by_consumer.get(str(consumer["id"]), plugin)
        return None if plugin is None else plugin.access(ctx)

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Run the response phase of the consumer's instance, if it has one."""
        consumer = ctx.consumer
        plugin = self.instance(None if consumer is None else str(consumer["id"]))
        header_filter = getattr(plugin, "header_filter", None)
        if header_filter is None:
            return None
        rewrite: HeaderRewrite | None = header_filter(ctx, status, headers)
        return rewrite

    def wants_body(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> bool:
        """Tell whether the consumer's instance changes this response's body."""
        wants_body = getattr(self._current(ctx), "wants_body", None)
        return wants_body is not None and bool(wants_body(ctx, status, headers))

    def body_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes], body: bytes
    ) -> bytes | None:
        """Run the body phase of the consumer's instance, if it has one."""
        body_filter = getattr(self._current(ctx), "body_filter", None)
        if body_filter is None:
            return None
        changed: bytes | None = body_filter(ctx, status, headers, body)
        return changed

    def log(self, ctx: RequestContext, served: Served) -> None:
        """Run the log phase of the consumer's instance, if it has one."""
        consumer = ctx.consumer
        plugin = self.instance(None if consumer is None else str(consumer["id"]))
        log = getattr(plugin, "log", None)
        if log is not None:
            log(ctx, served)

    def _current(self, ctx: RequestContext) -> Plugin | None:
        consumer = ctx.consumer
        return self.instance(None if consumer is None else str(consumer["id"]))

    def instance(self, consumer_id: str | None) -> Plugin | None:
        """Return the instance a request of this consumer runs (None: none)."""
        if consumer_id is None:
            return self._default
        return self._by_consumer.get(consumer_id, self._default)
