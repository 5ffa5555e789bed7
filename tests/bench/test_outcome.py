from __future__ import annotations

import pytest

from bench.outcome import ScenarioResult, Target, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(AssertionError):
        percentile([], 0.5)


def test_target_at_least_is_met_on_the_threshold() -> None:
    assert Target.check("t", 0.4, ">=", 0.4, "×").status == "met"
    assert Target.check("t", 0.39, ">=", 0.4, "×").status == "not met"


def test_target_below_is_not_met_on_the_threshold() -> None:
    assert Target.check("t", 49.9, "<", 50, "ms").status == "met"
    assert Target.check("t", 50, "<", 50, "ms").status == "not met"


def test_target_without_measurement_is_skipped() -> None:
    target = Target.check("t", None, "<", 50, "ms", reason="absent")
    assert (target.status, target.reason) == ("skipped", "absent")


def test_empty_series_is_not_recorded_as_a_metric() -> None:
    result = ScenarioResult("s", "S")
    assert result.add("a", "req/s", "req/s", []) is None
    assert result.metrics == []


def test_metric_reports_median_and_range() -> None:
    result = ScenarioResult("s", "S")
    result.add("a", "req/s", "req/s", [3.0, 1.0, 2.0])
    metric = result.find("a", "req/s")
    assert metric is not None
    assert (metric.median, metric.low, metric.high) == (2.0, 1.0, 3.0)
