"""The request-transformer plugin's header and query changes through a node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.dataplane import proxy_to_echo


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "request-transformer", "config": config}],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    routes = [
        _route(
            "headers",
            remove={"headers": ["X-Drop"]},
            rename={"headers": ["X-Old:X-Renamed"]},
            replace={"headers": ["X-Swap:new", "X-Missing:no"]},
            add={"headers": ["X-Added:yes", "X-Kept:ignored"]},
            append={"headers": ["X-More:two"]},
        ),
        _route(
            "query",
            remove={"querystring": ["drop"]},
            rename={"querystring": ["old:renamed"]},
            replace={"querystring": ["swap:new value"]},
            add={"querystring": ["added:yes", "kept:ignored"]},
            append={"querystring": ["more:two"]},
        ),
    ]
    with proxy_to_echo(tmp_path_factory.mktemp("proxy"), routes) as http:
        yield http


def test_headers_change_in_kongs_order(client: httpx.Client) -> None:
    sent = {
        "X-Drop": "1",
        "X-Old": "moved",
        "X-Swap": "old",
        "X-Kept": "mine",
        "X-More": "one",
    }
    headers = client.get("/headers", headers=sent).json()["headers"]
    assert "x-drop" not in headers
    assert "x-old" not in headers
    assert headers["x-renamed"] == "moved"
    assert headers["x-swap"] == "new"
    assert "x-missing" not in headers
    assert headers["x-added"] == "yes"
    assert headers["x-kept"] == "mine"
    assert headers["x-more"] == "one, two"


def test_append_adds_a_header_that_was_absent(client: httpx.Client) -> None:
    headers = client.get("/headers").json()["headers"]
    assert headers["x-more"] == "two"
    assert headers["x-added"] == "yes"


def test_the_query_string_changes_in_kongs_order(client: httpx.Client) -> None:
    reply = client.get(
        "/query?drop=1&old=moved&swap=old&kept=mine&more=one&other=x"
    ).json()
    assert reply["query"] == {
        "renamed": "moved",
        "swap": "new value",
        "kept": "mine",
        "more": ["one", "two"],
        "other": "x",
        "added": "yes",
    }
    assert "swap=new%20value" in reply["url"]


def test_a_query_with_nothing_to_change_is_sent_as_it_came(
    client: httpx.Client,
) -> None:
    reply = client.get("/headers?a=%41&b").json()
    assert reply["url"].endswith("/?a=%41&b")
