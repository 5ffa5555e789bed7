"""The control plane checks prometheus plugin configs against Kong's schema."""

from __future__ import annotations

import httpx
import pytest

from tests.control_plane.conftest import assert_problem, create_group, entities


@pytest.fixture
def base(api: httpx.Client) -> str:
    return entities(create_group(api))


def test_a_flag_that_is_not_a_boolean_is_refused_naming_it(
    api: httpx.Client, base: str
) -> None:
    response = api.post(
        f"{base}/plugins", json={"name": "prometheus", "config": {"per_consumer": "x"}}
    )
    assert_problem(response, 400, "config.per_consumer")


def test_an_unknown_field_is_refused_naming_it(api: httpx.Client, base: str) -> None:
    response = api.post(
        f"{base}/plugins", json={"name": "prometheus", "config": {"buckets": [1]}}
    )
    assert_problem(response, 400, "config.buckets")


def test_every_metric_is_off_by_default(api: httpx.Client, base: str) -> None:
    response = api.post(f"{base}/plugins", json={"name": "prometheus"})
    assert response.status_code == 201, response.text
    config = response.json()["config"]
    assert config == {
        "per_consumer": False,
        "status_code_metrics": False,
        "latency_metrics": False,
        "bandwidth_metrics": False,
        "upstream_health_metrics": False,
        "ai_metrics": False,
    }


def test_the_plugin_can_be_scoped_to_a_consumer(api: httpx.Client, base: str) -> None:
    # Kong's schema does not mark it no_consumer.
    consumer = api.post(f"{base}/consumers", json={"username": "alice"})
    assert consumer.status_code == 201, consumer.text
    response = api.post(
        f"{base}/consumers/alice/plugins",
        json={"name": "prometheus", "config": {"per_consumer": True}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["consumer"] == {"id": consumer.json()["id"]}
