"""The request-transformer plugin through a node, each change Kong makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from tests.support.dataplane import proxy_to_echo


def _route(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [f"/{name}"],
        "plugins": [{"name": "request-transformer", "config": config}],
    }


_BODY_EDITS = {
    "remove": {"body": ["drop"]},
    "rename": {"body": ["old:new"]},
    "replace": {"body": ["swap:new", "missing:no"]},
    "add": {"body": ["added:yes", "kept:ignored"]},
    "append": {"body": ["more:two", "fresh:one"]},
}
_SENT = {"drop": "1", "old": "moved", "swap": "old", "kept": "mine", "more": "one"}


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
        _route("body", **_BODY_EDITS),
        _route(
            "templated",
            add={
                "headers": [
                    "X-Dotted:$(headers.x_source)",
                    'X-Indexed:$(headers["X-Source"])',
                    'X-Fallback:$(headers.x_none or "none")',
                    "X-Text:id=$(query_params.id)!",
                    "X-Absent:$(query_params.none)",
                    "X-Escaped:$('$(headers.x_source)')",
                    "X-Flag:$(query_params.flag)",
                ],
                "querystring": ['copied:$(query_params["id"])-$(headers.x_source)'],
                "body": ["from_query:$(query_params.id)"],
            },
        ),
        {
            "name": "captures",
            "paths": [r"~/users/(?<user>\w+)/items/(\d+)$"],
            "plugins": [
                {
                    "name": "request-transformer",
                    "config": {
                        "replace": {
                            "uri": "/v2/$(uri_captures.user)/$(uri_captures[2])"
                        },
                        "add": {
                            "headers": [
                                'X-User:$(uri_captures["user"])',
                                'X-Missing:$(uri_captures[3] or "-")',
                            ]
                        },
                    },
                }
            ],
        },
        _route("uri", replace={"uri": "/fixed path"}),
        _route("uri-templated", replace={"uri": "$(headers.x_path)"}),
        _route("to-get", http_method="GET"),
        _route("to-post", http_method="POST"),
        _route("host", replace={"headers": ["Host:upstream.example"]}),
        _route("host-renamed", rename={"headers": ["X-Target:Host"]}),
        _route(
            "host-kept",
            remove={"headers": ["Host"]},
            add={"headers": ["Host:added.example"]},
            append={"headers": ["Host:appended.example"]},
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


def _json_echo(reply: httpx.Response) -> tuple[dict[str, Any], Any]:
    """Return the echo and the JSON body the upstream got."""
    assert reply.status_code == 200, reply.text
    echo: dict[str, Any] = reply.json()
    return echo, orjson.loads(echo["body"])


def test_a_json_body_changes_in_kongs_order(client: httpx.Client) -> None:
    sent = {**_SENT, "number": 5, "listed": ["a"]}
    echo, body = _json_echo(client.post("/body", json=sent))
    assert body == {
        "new": "moved",
        "swap": "new",
        "kept": "mine",
        "more": ["one", "two"],
        "number": 5,
        "listed": ["a"],
        "added": "yes",
        "fresh": ["one"],
    }
    assert echo["headers"]["content-length"] == str(len(echo["body"]))


def test_append_makes_an_array_of_what_the_json_had(client: httpx.Client) -> None:
    sent = {"more": ["one", 1], "fresh": 2}
    _, body = _json_echo(client.post("/body", json=sent))
    assert body["more"] == ["one", 1, "two"]
    assert body["fresh"] == [2, "one"]


def test_json_false_is_added_over_and_not_replaced(client: httpx.Client) -> None:
    _, body = _json_echo(client.post("/body", json={"swap": False, "kept": False}))
    assert body["swap"] is False
    assert body["kept"] == "ignored"


def test_an_empty_json_body_gets_what_is_added(client: httpx.Client) -> None:
    reply = client.post("/body", headers={"Content-Type": "application/json"})
    _, body = _json_echo(reply)
    assert body == {
        "added": "yes",
        "kept": "ignored",
        "more": ["two"],
        "fresh": ["one"],
    }


def test_a_chunked_json_body_is_sent_with_its_new_length(
    client: httpx.Client,
) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"old": "mo'
        yield b'ved"}'

    reply = client.post(
        "/body", content=pieces(), headers={"Content-Type": "application/json"}
    )
    echo, body = _json_echo(reply)
    assert body["new"] == "moved"
    assert "transfer-encoding" not in echo["headers"]
    assert echo["headers"]["content-length"] == str(len(echo["body"]))


def test_a_body_that_is_no_json_object_is_left_alone(client: httpx.Client) -> None:
    for raw in (b"[1, 2]", b"{not json"):
        reply = client.post(
            "/body", content=raw, headers={"Content-Type": "application/json"}
        )
        assert reply.json()["body"] == raw.decode()


def test_a_form_body_changes_in_kongs_order(client: httpx.Client) -> None:
    echo = client.post("/body", data=_SENT).json()
    assert parse_qs(echo["body"]) == {
        "new": ["moved"],
        "swap": ["new"],
        "kept": ["mine"],
        "more": ["one", "two"],
        "added": ["yes"],
        "fresh": ["one"],
    }
    assert echo["headers"]["content-length"] == str(len(echo["body"]))


def test_a_multipart_body_changes_without_appends(client: httpx.Client) -> None:
    files = {"old": ("moved.txt", b"file content", "text/plain")}
    echo = client.post("/body", data={"drop": "1", "swap": "old"}, files=files).json()
    body = echo["body"]
    assert 'name="drop"' not in body and 'name="old"' not in body
    assert 'name="new"\r\n\r\nfile content\r\n' in body
    assert 'name="swap"\r\n\r\nnew\r\n' in body
    assert 'name="added"\r\n\r\nyes\r\n' in body
    assert 'name="more"' not in body and 'name="fresh"' not in body
    assert echo["headers"]["content-length"] == str(len(body))


def test_a_body_of_another_type_is_left_alone(client: httpx.Client) -> None:
    echo = client.post(
        "/body", content=b"drop=1", headers={"Content-Type": "text/plain"}
    ).json()
    assert echo["body"] == "drop=1"
    assert echo["headers"]["content-length"] == "6"


def test_a_body_too_large_to_hold_goes_on_as_it_came(client: httpx.Client) -> None:
    raw = orjson.dumps({"drop": "x" * 400_000})
    echo = client.post(
        "/body", content=raw, headers={"Content-Type": "application/json"}
    ).json()
    assert echo["body"] == raw.decode()


def test_templates_read_headers_and_query_arguments(client: httpx.Client) -> None:
    echo = client.post(
        "/templated?id=42&flag",
        headers={"X-Source": "src"},
        json={"a": 1},
    ).json()
    headers = echo["headers"]
    assert headers["x-dotted"] == "src"
    assert headers["x-indexed"] == "src"
    assert headers["x-fallback"] == "none"
    assert headers["x-text"] == "id=42!"
    assert headers["x-absent"] == ""
    assert headers["x-escaped"] == "$(headers.x_source)"
    assert headers["x-flag"] == "true"
    assert echo["query"]["copied"] == "42-src"
    assert orjson.loads(echo["body"]) == {"a": 1, "from_query": "42"}


def test_uri_captures_fill_the_new_path(client: httpx.Client) -> None:
    echo = client.get("/users/ann/items/7?x=1").json()
    assert echo["path"] == "/v2/ann/7"
    assert echo["query"] == {"x": "1"}
    assert echo["headers"]["x-user"] == "ann"
    assert echo["headers"]["x-missing"] == "-"
    assert echo["headers"]["x-forwarded-path"] == "/users/ann/items/7"


def test_replace_uri_keeps_the_query_string(client: httpx.Client) -> None:
    echo = client.get("/uri/more?a=1&b").json()
    assert echo["path"] == "/fixed%20path"
    assert echo["url"].endswith("/fixed%20path?a=1&b")


def test_a_templated_uri_without_its_slash_leaves_the_path(
    client: httpx.Client,
) -> None:
    assert client.get("/uri-templated", headers={"X-Path": "/p"}).json()["path"] == (
        "/p"
    )
    assert client.get("/uri-templated", headers={"X-Path": "p"}).json()["path"] == "/"


def test_the_method_changes_and_a_form_moves_to_the_query(
    client: httpx.Client,
) -> None:
    echo = client.post("/to-get?b=0", data={"a": "1", "b": "2"}).json()
    assert echo["method"] == "GET"
    assert echo["query"] == {"b": ["0", "2"], "a": "1"}
    assert echo["body"] == "a=1&b=2"  # Kong leaves the body


def test_the_method_changes_for_a_request_without_body(
    client: httpx.Client,
) -> None:
    assert client.get("/to-post").json()["method"] == "POST"
    assert client.post("/to-get", json={"a": 1}).json()["query"] == {}


def test_a_head_request_stays_head(client: httpx.Client) -> None:
    reply = client.head("/to-post")
    assert reply.status_code == 200
    assert reply.content == b""


def test_replace_sets_the_host_sent_upstream(client: httpx.Client) -> None:
    headers = client.get("/host").json()["headers"]
    assert headers["host"] == "upstream.example"
    assert headers["x-forwarded-host"] == "127.0.0.1"


def test_a_header_renamed_to_host_becomes_the_host(client: httpx.Client) -> None:
    headers = client.get("/host-renamed", headers={"X-Target": "t.example"}).json()[
        "headers"
    ]
    assert headers["host"] == "t.example"
    assert "x-target" not in headers
    plain = client.get("/host-renamed").json()["headers"]
    assert plain["host"].startswith("127.0.0.1:")


def test_host_is_not_removed_added_or_appended(client: httpx.Client) -> None:
    headers = client.get("/host-kept").json()["headers"]
    assert headers["host"].startswith("127.0.0.1:")
