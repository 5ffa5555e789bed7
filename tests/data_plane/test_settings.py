"""Options come from the command line or PORTICO_<OPTION> variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_plane.settings import Address, parse_settings
from shared.errors import ValidationError


def test_defaults_match_the_documented_ones() -> None:
    settings = parse_settings([], {})
    assert settings.proxy_listen == Address("0.0.0.0", 8000)
    assert settings.status_listen == Address("127.0.0.1", 8100)
    assert settings.prefix == Path("var/dp")
    assert settings.cluster_control_plane is None


def test_an_environment_variable_sets_an_option() -> None:
    settings = parse_settings([], {"PORTICO_PROXY_LISTEN": "127.0.0.1:9000"})
    assert settings.proxy_listen == Address("127.0.0.1", 9000)


def test_the_command_line_wins_over_the_environment() -> None:
    settings = parse_settings(
        ["--proxy-listen", "127.0.0.1:9001"], {"PORTICO_PROXY_LISTEN": "0.0.0.0:1"}
    )
    assert settings.proxy_listen.port == 9001


def test_node_labels_are_parsed() -> None:
    settings = parse_settings(["--node-labels", "env:prod, zone:a"], {})
    assert settings.node_labels == {"env": "prod", "zone": "a"}


def test_a_malformed_label_is_refused() -> None:
    with pytest.raises(ValidationError, match="k:v"):
        parse_settings(["--node-labels", "novalue"], {})


def test_a_malformed_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="--status-listen"):
        parse_settings(["--status-listen", "localhost"], {})


def test_an_ipv6_address_is_accepted() -> None:
    assert parse_settings(["--proxy-listen", "[::1]:8000"], {}).proxy_listen == (
        Address("::1", 8000)
    )


def test_a_declarative_file_and_a_control_plane_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="exclude"):
        parse_settings(
            ["--declarative-config", "k.yaml", "--cluster-control-plane", "https://x"],
            {},
        )


def test_the_telemetry_interval_is_read_from_the_environment() -> None:
    settings = parse_settings([], {"PORTICO_CLUSTER_TELEMETRY_INTERVAL": "2.5"})
    assert settings.cluster_telemetry_interval == 2.5
    assert parse_settings([], {}).cluster_telemetry_interval == 10.0


def test_a_telemetry_interval_that_is_not_a_duration_is_refused() -> None:
    with pytest.raises(ValidationError, match="--cluster-telemetry-interval"):
        parse_settings(["--cluster-telemetry-interval", "soon"], {})


def test_cluster_limits_default_to_kongs_payload_and_twenty_second_pings() -> None:
    settings = parse_settings([], {})
    assert settings.cluster_max_payload == 16 * 1024 * 1024
    assert settings.cluster_ping_interval == 20.0


def test_cluster_limits_are_read_and_checked() -> None:
    settings = parse_settings(
        ["--cluster-max-payload", "65536", "--cluster-ping-interval", "0.5"], {}
    )
    assert (settings.cluster_max_payload, settings.cluster_ping_interval) == (
        65536,
        0.5,
    )
    with pytest.raises(ValidationError, match="--cluster-max-payload"):
        parse_settings(["--cluster-max-payload", "12"], {})
    with pytest.raises(ValidationError, match="--cluster-ping-interval"):
        parse_settings(["--cluster-ping-interval", "never"], {})


def test_workers_default_to_one_and_are_read_from_the_environment() -> None:
    assert parse_settings([], {}).workers == 1
    assert parse_settings([], {"PORTICO_WORKERS": "4"}).workers == 4
    assert parse_settings(["--workers", "2"], {"PORTICO_WORKERS": "4"}).workers == 2


def test_workers_auto_is_one_per_usable_cpu() -> None:
    assert parse_settings(["--workers", "auto"], {}).workers == len(
        os.sched_getaffinity(0)
    )


@pytest.mark.parametrize("value", ["0", "two", "65", "1.5"])
def test_a_worker_count_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="--workers must be 1 to 64"):
        parse_settings(["--workers", value], {})


def test_plugins_default_to_every_bundled_one_and_refuse_unknown_names() -> None:
    assert parse_settings([], {}).plugins == ()
    chosen = parse_settings(["--plugins", "key-auth, basic-auth"], {})
    assert chosen.plugins == ("basic-auth", "key-auth")
    with pytest.raises(ValidationError, match="--plugins"):
        parse_settings(["--plugins", "basic-auth,no-such-plugin"], {})
