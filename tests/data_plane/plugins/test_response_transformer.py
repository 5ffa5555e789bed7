"""The response-transformer plugin's header changes through a real node.

The echo upstream answers with `content-type: application/json`, the
header the present-or-absent rules are tried on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.dataplane import proxy_to_echo


def _route(name: str, *more: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "response-transformer", "config": config}, *more],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route(
            "fixed",
            remove={"headers": ["Content-Type"]},
            append={"headers": ["X-A:1", "X-A:2", "X-B:b:c"]},
        ),
        _route(
            "present",
            rename={"headers": ["Content-Type:X-Type"]},
            replace={"headers": ["X-Absent:no"]},
            add={"headers": ["X-New:yes"]},
        ),
        _route(
            "replace",
            replace={"headers": ["Content-Type:text/plain"]},
            add={"headers": ["Content-Type:ignored"]},
        ),
        _route(
            "locked",
            {"name": "key-auth"},
            add={"headers": ["X-Seen:1"]},
            remove={"headers": ["Content-Type"]},
        ),
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_remove_drops_and_append_adds_lines(client: httpx.Client) -> None:
    reply = client.get("/fixed")
    assert reply.status_code == 200
    assert "content-type" not in reply.headers
    assert reply.headers.get_list("x-a") == ["1", "2"]
    assert reply.headers["x-b"] == "b:c"  # split at the first colon only


def test_rename_moves_a_present_header(client: httpx.Client) -> None:
    reply = client.get("/present")
    assert "content-type" not in reply.headers
    assert reply.headers["x-type"] == "application/json"


def test_replace_skips_an_absent_header_and_add_fills_it(
    client: httpx.Client,
) -> None:
    reply = client.get("/present")
    assert "x-absent" not in reply.headers
    assert reply.headers["x-new"] == "yes"


def test_replace_changes_a_present_header_that_add_leaves(
    client: httpx.Client,
) -> None:
    reply = client.get("/replace")
    assert reply.headers.get_list("content-type") == ["text/plain"]
    assert reply.json()["path"] == "/"  # the body is the upstream's


def test_an_answer_of_another_plugin_is_transformed_too(
    client: httpx.Client,
) -> None:
    reply = client.get("/locked")
    assert reply.status_code == 401
    assert reply.headers["x-seen"] == "1"
    assert "content-type" not in reply.headers
    assert reply.json() == {"message": "No API key found in request"}
