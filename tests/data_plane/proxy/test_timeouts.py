"""A service's connect timeout ends in Kong's 504, and the node keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import DataPlaneProcess, start_data_plane


@pytest.fixture(scope="module")
def unanswered() -> Iterator[int]:
    """Yield a port whose accept queue is full, so connecting to it hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    # Linux drops SYNs once the queue is full; a connect that times out
    # proves it is.
    for _ in range(16):
        filler = socket.socket()
        filler.settimeout(0.2)
        fillers.append(filler)
        try:
            filler.connect(("127.0.0.1", port))
        except TimeoutError:
            break
    else:
        pytest.fail("the accept queue never filled up")
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, unanswered: int
) -> Iterator[DataPlaneProcess]:
    config: dict[str, Any] = {
        "services": [
            {
                "name": "unanswered",
                "url": f"http://127.0.0.1:{unanswered}",
                "connect_timeout": 100,
                "retries": 1,
                "routes": [{"name": "hang", "paths": ["/hang"]}],
            }
        ]
    }
    tmp: Path = tmp_path_factory.mktemp("dp")
    with start_data_plane(tmp, declarative=config) as process:
        yield process


def test_a_connect_timeout_gets_kongs_504(node: DataPlaneProcess) -> None:
    reply = httpx.get(node.proxy_url + "/hang", timeout=deadline(10))
    assert reply.status_code == 504
    assert reply.json() == {"message": "The upstream server is timing out"}
    assert node.status()["counters"]["responses_5xx"] >= 1
