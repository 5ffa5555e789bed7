from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from bench.nginx import UPSTREAM_BODY, proxy_config, start_nginx, upstream_config
from bench.processes import Pinning, free_port, port_open
from bench.tools import find_program

UNPINNED = Pinning(False, 1, 0, "tests run unpinned")
NGINX = find_program("nginx")

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is installed by python -m bench"
)


def test_proxy_strips_mock_and_answers_with_the_upstream_body(tmp_path: Path) -> None:
    assert NGINX is not None, "checked by pytestmark"
    upstream, proxy = free_port(), free_port()
    with (
        start_nginx(
            NGINX,
            "upstream",
            upstream_config(tmp_path / "upstream", upstream),
            upstream,
            work_dir=tmp_path,
            pinning=UNPINNED,
            cpu=0,
        ),
        start_nginx(
            NGINX,
            "proxy",
            proxy_config(tmp_path / "proxy", proxy, upstream),
            proxy,
            work_dir=tmp_path,
            pinning=UNPINNED,
            cpu=1,
        ),
    ):
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/mock") as response:
            assert response.status == 200
            assert response.read().decode() == UPSTREAM_BODY


def test_stopped_nginx_releases_its_port(tmp_path: Path) -> None:
    assert NGINX is not None, "checked by pytestmark"
    port = free_port()
    service = start_nginx(
        NGINX,
        "upstream",
        upstream_config(tmp_path / "upstream", port),
        port,
        work_dir=tmp_path,
        pinning=UNPINNED,
        cpu=0,
    )
    service.stop()
    assert not service.alive()
    assert not port_open(port)
