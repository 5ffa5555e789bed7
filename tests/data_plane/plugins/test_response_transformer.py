"""The response-transformer plugin through a real node, as Kong 3.x behaves.

The echo upstream answers with `content-type: application/json`, the
header the present-or-absent rules are tried on; its `/reply` path answers
a chosen body (the request's) with a chosen type, encoding and framing.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from data_plane.plugins.base import ConfigIndex
from data_plane.plugins.response_transformer import (
    JsonResponseTransformer,
    build,
    is_json,
)
from data_plane.proxy.hold import HOLD_LIMIT
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
        _route("json-remove", remove={"json": ["drop", "absent", "a.b"]}),
        _route("json-rename", rename={"json": ["old:new", "nil:none", "off:no"]}),
        _route("json-replace", replace={"json": ["kept:x", "off:x", "nil:x", "no:x"]}),
        _route("json-add", add={"json": ["fresh:1", "kept:x", "off:x", "nil:x"]}),
        _route("json-append", append={"json": ["text:b", "list:b", "num:b", "new:b"]}),
        _route(
            "json-types",
            append={
                "json": ["n:1.5", "h:0x10", "e:1e3", "t:true", "f:yes", "s:2", "x:no"],
                "json_types": [
                    "number",
                    "number",
                    "number",
                    "boolean",
                    "boolean",
                    "string",
                    "number",
                ],
            },
        ),
        _route(
            "json-values",
            add={"json": ["colons::a:b", "path:C:\\dir", "empty:", 'quoted:"q"']},
        ),
        _route(
            "json-order",
            remove={"json": ["a"]},
            rename={"json": ["b:c"]},
            replace={"json": ["c:replaced"]},
            add={"json": ["a:added"]},
            append={"json": ["a:appended"]},
        ),
        _route(
            "json-untyped",
            rename={"headers": ["Content-Type:X-Type"]},
            add={"json": ["fresh:1"]},
        ),
        _route("locked-json", {"name": "key-auth"}, add={"json": ["added:yes"]}),
        {"name": "plain", "paths": ["/plain"]},
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


def _reply(client: httpx.Client, route: str, body: Any, **query: str) -> httpx.Response:
    """Have the echo upstream answer `body` (JSON unless bytes) on `route`."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(f"/{route}/reply", content=content, params=query)


def test_remove_drops_json_keys(client: httpx.Client) -> None:
    reply = _reply(client, "json-remove", {"drop": 1, "keep": 2, "a": {"b": 3}})
    assert reply.json() == {"keep": 2, "a": {"b": 3}}  # a dot is part of a name


def test_rename_moves_present_keys_null_and_false_included(
    client: httpx.Client,
) -> None:
    reply = _reply(client, "json-rename", {"old": "o", "nil": None, "off": False})
    assert reply.json() == {"new": "o", "none": None, "no": False}


def test_replace_changes_present_keys_except_false_ones(
    client: httpx.Client,
) -> None:
    reply = _reply(client, "json-replace", {"kept": "k", "off": False, "nil": None})
    assert reply.json() == {"kept": "x", "off": False, "nil": "x"}


def test_add_fills_absent_and_false_keys(client: httpx.Client) -> None:
    reply = _reply(client, "json-add", {"kept": "k", "off": False, "nil": None})
    assert reply.json() == {"kept": "k", "off": "x", "nil": None, "fresh": "1"}


def test_append_makes_lists(client: httpx.Client) -> None:
    reply = _reply(client, "json-append", {"text": "a", "list": ["a"], "num": 1})
    assert reply.json() == {
        "text": ["a", "b"],
        "list": ["a", "b"],
        "num": ["b"],
        "new": ["b"],
    }


def test_json_types_cast_values_as_kong_does(client: httpx.Client) -> None:
    reply = _reply(client, "json-types", {})
    assert reply.json() == {
        "n": [1.5],
        "h": [16],
        "e": [1000],
        "t": [True],
        "f": [False],
        "s": ["2"],
    }  # "no" is no number: that entry is skipped


def test_values_are_taken_as_kongs_encoding_leaves_them(
    client: httpx.Client,
) -> None:
    reply = _reply(client, "json-values", {})
    assert reply.json() == {
        "colons": "a:b",
        "path": "C:\\\\dir",
        "empty": "null",
        "quoted": '"q"',
    }


def test_the_changes_apply_in_kongs_order(client: httpx.Client) -> None:
    reply = _reply(client, "json-order", {"a": "gone", "b": "moved"})
    assert reply.json() == {"c": "replaced", "a": ["added", "appended"]}


def test_the_new_body_goes_out_with_its_own_length(client: httpx.Client) -> None:
    reply = _reply(client, "json-add", {}, chunked="1")
    assert reply.content == b'{"fresh":"1","kept":"x","off":"x","nil":"x"}'
    assert reply.headers["content-length"] == str(len(reply.content))
    assert "transfer-encoding" not in reply.headers


def test_a_json_type_with_parameters_is_changed(client: httpx.Client) -> None:
    reply = _reply(client, "json-add", {}, type="Application/JSON; charset=utf-8")
    assert reply.json()["fresh"] == "1"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/vnd.api+json", "application/json;"]
)
def test_a_body_of_another_type_is_left_as_it_came(
    client: httpx.Client, content_type: str
) -> None:
    reply = _reply(client, "json-add", b'{"a": 1}', type=content_type)
    assert reply.content == b'{"a": 1}'
    assert reply.headers["content-length"] == "8"


@pytest.mark.parametrize("body", [b'{"a": ', b'["a", {"b": 1}]', b'"text"', b""])
def test_a_body_that_is_no_json_object_is_left_as_it_came(
    client: httpx.Client, body: bytes
) -> None:
    reply = _reply(client, "json-add", body)
    assert reply.status_code == 200
    assert reply.content == body


def test_a_gzip_body_is_left_as_it_came(client: httpx.Client) -> None:
    packed = gzip.compress(b'{"a": 1}')
    reply = _reply(client, "json-add", packed, encoding="gzip")
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.headers["content-length"] == str(len(packed))
    assert reply.content == b'{"a": 1}'  # httpx inflated the upstream's bytes


def test_a_body_is_left_when_the_final_head_is_no_longer_json(
    client: httpx.Client,
) -> None:
    reply = _reply(client, "json-untyped", b'{"a": 1}')
    assert reply.headers["x-type"] == "application/json"
    assert reply.content == b'{"a": 1}'


def test_a_head_request_passes_without_a_body(client: httpx.Client) -> None:
    head = client.head("/json-add/reply")
    assert head.status_code == 200
    assert head.content == b""


def _large() -> bytes:
    return orjson.dumps({"data": "x" * (HOLD_LIMIT + 1000)})


def test_a_chunked_body_over_the_limit_arrives_whole_and_unchanged(
    client: httpx.Client,
) -> None:
    body = _large()
    reply = _reply(client, "json-add", body, chunked="1")
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.content == body


def test_a_body_announced_over_the_limit_arrives_whole_and_unchanged(
    client: httpx.Client,
) -> None:
    body = _large()
    reply = _reply(client, "json-add", body)
    assert reply.headers["content-length"] == str(len(body))
    assert reply.content == body


def test_an_answer_of_another_plugin_gets_the_json_changes_too(
    client: httpx.Client,
) -> None:
    reply = client.get("/locked-json")
    assert reply.status_code == 401
    assert reply.json() == {"message": "No API key found in request", "added": "yes"}
    assert reply.headers["content-length"] == str(len(reply.content))


@pytest.mark.parametrize("route", ["plain", "fixed", "json-add"])
def test_a_stream_of_another_type_stays_chunked(
    client: httpx.Client, route: str
) -> None:
    reply = client.get(f"/{route}/stream/3")
    assert reply.headers["transfer-encoding"] == "chunked"
    assert len(reply.text.splitlines()) == 3


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"application/json", True),
        (b"APPLICATION/Json ; charset=utf-8", True),
        (b'application/json; charset="utf-8"', True),
        (b"text/plain, application/json", True),
        (b"application/problem+json", False),
        (b"application/jsonp", False),
        (b"application/json; charset", False),
        (b"text/json", False),
    ],
)
def test_json_is_recognized_as_kong_parses_media_types(
    content_type: bytes, expected: bool
) -> None:
    assert is_json(content_type) is expected


def _plugin(**config: Any) -> JsonResponseTransformer:
    plugin = build(config, ConfigIndex({}))
    assert isinstance(plugin, JsonResponseTransformer)
    return plugin


def test_only_json_changes_make_a_body_phase() -> None:
    headers_only = build(
        {"add": {"headers": ["a:1"], "json_types": ["number"]}}, ConfigIndex({})
    )
    assert not hasattr(headers_only, "body_filter")
    assert hasattr(_plugin(remove={"json": ["a"]}), "body_filter")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" 42 ", 42),
        ("-0x1F", -31),
        (".5", 0.5),
        ("3.14159265358979323", 3.1415926535898),
        ("1e400", None),
        ("nan", None),
        ("1_000", None),
        ("12abc", None),
    ],
)
def test_numbers_are_read_as_lua_reads_them(text: str, expected: Any) -> None:
    plugin = _plugin(add={"json": [f"n:{text}"], "json_types": ["number"]})
    document: dict[str, Any] = {}
    plugin.change(document)
    assert document == ({} if expected is None else {"n": expected})


def test_appending_to_an_object_uses_the_next_number_key() -> None:
    plugin = _plugin(append={"json": ["o:v", "o:w"]})
    document: dict[str, Any] = {"o": {"k": 1}}
    plugin.change(document)
    assert document == {"o": {"k": 1, "1": "v", "2": "w"}}


def test_a_key_renamed_to_itself_is_gone_as_in_kong() -> None:
    document: dict[str, Any] = {"a": 1, "b": 2}
    _plugin(rename={"json": ["a:a"]}).change(document)
    assert document == {"b": 2}
