"""Entity schemas of a runtime group, with Kong Admin API 3.9 semantics.

The control plane validates every body with :func:`validate_entity` and shows
entities through :func:`public_view`; :data:`ENTITIES` describes how each type
is addressed, what is unique and what a deletion cascades to;
:data:`PLUGIN_SCHEMAS` holds each bundled plugin's config schema and priority.
"""

from __future__ import annotations

from shared.schema.entities import (
    BY_ENDPOINT,
    ENTITIES,
    Dependent,
    EntitySchema,
    dependents,
)
from shared.schema.fields import Field
from shared.schema.plugin import PluginSchema
from shared.schema.plugins import PLUGIN_SCHEMAS
from shared.schema.routes import compile_path_regex, normalize_path
from shared.schema.validation import (
    Resolver,
    plugin_scope_key,
    public_view,
    validate_entity,
)

__all__ = [
    "BY_ENDPOINT",
    "ENTITIES",
    "PLUGIN_SCHEMAS",
    "Dependent",
    "EntitySchema",
    "Field",
    "PluginSchema",
    "Resolver",
    "compile_path_regex",
    "dependents",
    "normalize_path",
    "plugin_scope_key",
    "public_view",
    "validate_entity",
]
