"""Config schemas of the plugins Portico bundles, one module per plugin."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.schema.plugin import PluginSchema
from shared.schema.plugins import (
    acl,
    basic_auth,
    correlation_id,
    cors,
    ip_restriction,
    key_auth,
    prometheus,
    rate_limiting,
    request_size_limiting,
    request_termination,
    request_transformer,
    response_transformer,
)

_MODULES = (
    acl,
    basic_auth,
    correlation_id,
    cors,
    ip_restriction,
    key_auth,
    prometheus,
    rate_limiting,
    request_size_limiting,
    request_termination,
    request_transformer,
    response_transformer,
)

PLUGIN_SCHEMAS: Mapping[str, PluginSchema] = MappingProxyType(
    {module.SCHEMA.name: module.SCHEMA for module in _MODULES}
)

__all__ = ["PLUGIN_SCHEMAS", "PluginSchema"]
