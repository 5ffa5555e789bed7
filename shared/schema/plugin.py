"""What Portico knows about one plugin: its config schema and its priority."""

from __future__ import annotations

from dataclasses import dataclass

from shared.schema.fields import Field

HTTP_PROTOCOLS = ("grpc", "grpcs", "http", "https")


@dataclass(frozen=True, eq=False)
class PluginSchema:
    """Describe a bundled plugin: its name, config record and run order.

    Plugins run by `priority`, highest first, as in Kong. A `no_consumer`
    plugin (an authentication plugin) cannot be scoped to a consumer, since
    the consumer is what it establishes.
    """

    name: str
    priority: int
    config: Field
    protocols: tuple[str, ...] = HTTP_PROTOCOLS
    no_consumer: bool = False
