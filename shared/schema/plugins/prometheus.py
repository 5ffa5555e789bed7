"""The prometheus plugin's config: which optional metrics to export."""

from __future__ import annotations

from shared.schema.fields import record
from shared.schema.plugin import PluginSchema
from shared.schema.typedefs import boolean

SCHEMA = PluginSchema(
    name="prometheus",
    priority=13,
    config=record(
        {
            "per_consumer": boolean(False),
            "status_code_metrics": boolean(False),
            "latency_metrics": boolean(False),
            "bandwidth_metrics": boolean(False),
            "upstream_health_metrics": boolean(False),
            "ai_metrics": boolean(False),
        }
    ),
)
