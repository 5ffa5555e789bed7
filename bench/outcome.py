"""Describe what a scenario measured: metrics per contender, targets, status."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Comparison = Literal[">=", "<", "<="]
TargetStatus = Literal["met", "not met", "skipped"]
ScenarioStatus = Literal["ok", "skipped", "failed"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (`fraction` in 0..1)."""
    assert values, "percentile of no values"
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Metric:
    """One quantity for one contender, one value per run."""

    contender: str
    name: str
    unit: str
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "name": self.name,
            "unit": self.unit,
            "values": list(self.values),
            "median": self.median,
            "min": self.low,
            "max": self.high,
        }


@dataclass(frozen=True)
class Target:
    """A goal from an issue and whether this run met it."""

    description: str
    comparison: Comparison
    threshold: float
    unit: str
    measured: float | None
    status: TargetStatus
    reason: str = ""

    @classmethod
    def check(
        cls,
        description: str,
        measured: float | None,
        comparison: Comparison,
        threshold: float,
        unit: str,
        *,
        reason: str = "",
    ) -> Target:
        """Compare `measured` with the threshold; no measurement means skipped."""
        if measured is None:
            status: TargetStatus = "skipped"
        elif comparison == ">=":
            status = "met" if measured >= threshold else "not met"
        elif comparison == "<=":
            status = "met" if measured <= threshold else "not met"
        else:
            status = "met" if measured < threshold else "not met"
        return cls(description, comparison, threshold, unit, measured, status, reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "unit": self.unit,
            "measured": self.measured,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario reports; filled in while it runs."""

    name: str
    title: str
    status: ScenarioStatus = "ok"
    reason: str = ""
    metrics: list[Metric] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, contender: str, name: str, unit: str, values: Sequence[float]
    ) -> Metric | None:
        """Record a metric; an empty series is left out, never reported as zero."""
        if not values:
            return None
        metric = Metric(contender, name, unit, tuple(values))
        self.metrics.append(metric)
        return metric

    def find(self, contender: str, name: str) -> Metric | None:
        """Return the metric recorded for `contender` under `name`, if any."""
        for metric in self.metrics:
            if metric.contender == contender and metric.name == name:
                return metric
        return None

    def skip(self, reason: str) -> ScenarioResult:
        """Mark the whole scenario skipped, e.g. when what it measures is absent."""
        self.status = "skipped"
        self.reason = reason
        return self

    def fail(self, reason: str) -> ScenarioResult:
        """Mark the scenario failed: it ran but could not produce its figures."""
        self.status = "failed"
        self.reason = reason
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "metrics": [m.as_dict() for m in self.metrics],
            "targets": [t.as_dict() for t in self.targets],
            "notes": list(self.notes),
        }
