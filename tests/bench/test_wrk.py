from __future__ import annotations

from pathlib import Path

import pytest

from bench.nginx import UPSTREAM_BODY, start_nginx, upstream_config
from bench.processes import Pinning, free_port
from bench.tools import find_program
from bench.wrk import (
    BackgroundLoad,
    LoadError,
    parse_summary,
    rotating_script,
    run_load,
)

UNPINNED = Pinning(False, 1, 0, "tests run unpinned")

SUMMARY = (
    'PORTICO_WRK {"requests":1000,"duration_us":2000000,"bytes":1,'
    '"connect_errors":0,"read_errors":1,"write_errors":0,"status_errors":3,'
    '"timeouts":2,"p50_us":150,"p90_us":300,"p99_us":900,"max_us":4000}'
)


def test_summary_line_is_read_back_in_milliseconds() -> None:
    result = parse_summary("Running 2s test\n" + SUMMARY + "\n")
    assert result.per_second == 500.0
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.15, 0.9, 4.0)
    assert (result.errors, result.non_2xx) == (3, 3)


def test_output_without_summary_is_an_error() -> None:
    with pytest.raises(LoadError):
        parse_summary("unable to connect to 127.0.0.1:1 Connection refused\n")


needs_tools = pytest.mark.skipif(
    find_program("nginx") is None or find_program("wrk") is None,
    reason="nginx and wrk are installed by python -m bench",
)


@needs_tools
def test_load_against_nginx_upstream_counts_requests(tmp_path: Path) -> None:
    nginx, wrk = find_program("nginx"), find_program("wrk")
    assert nginx is not None and wrk is not None, "checked by needs_tools"
    port = free_port()
    config = upstream_config(tmp_path / "upstream", port)
    with start_nginx(
        nginx, "upstream", config, port, work_dir=tmp_path, pinning=UNPINNED, cpu=0
    ):
        result = run_load(
            wrk,
            f"http://127.0.0.1:{port}/",
            connections=2,
            seconds=1,
            pinning=UNPINNED,
        )
    assert result.requests > 0
    assert result.non_2xx == 0
    assert len(UPSTREAM_BODY) < 110


def test_a_rotating_script_refuses_text_it_cannot_quote(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        rotating_script([('/a"b', "host")], tmp_path / "rotate.lua")


def test_a_rotating_script_reports_like_the_default_one(tmp_path: Path) -> None:
    script = rotating_script([("/a", "x.example.com")], tmp_path / "rotate.lua")
    text = script.read_text()
    assert '{"/a", "x.example.com"}' in text
    assert "PORTICO_WRK" in text


@needs_tools
def test_a_background_load_rotates_requests_until_stopped(tmp_path: Path) -> None:
    nginx, wrk = find_program("nginx"), find_program("wrk")
    assert nginx is not None and wrk is not None, "checked by needs_tools"
    port = free_port()
    config = upstream_config(tmp_path / "upstream", port)
    script = rotating_script(
        [("/a", "a.example.com"), ("/b", "b.example.com")], tmp_path / "rotate.lua"
    )
    with start_nginx(
        nginx, "upstream", config, port, work_dir=tmp_path, pinning=UNPINNED, cpu=0
    ):
        load = BackgroundLoad(
            wrk,
            f"http://127.0.0.1:{port}/",
            connections=2,
            pinning=UNPINNED,
            script=script,
            limit=60,
        )
        result = load.stop()
    assert result.non_2xx == 0 and result.errors == 0
