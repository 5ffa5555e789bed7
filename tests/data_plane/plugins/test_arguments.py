"""Reading query strings and bodies the way Kong's PDK does."""

from __future__ import annotations

import orjson

from data_plane.plugins.arguments import arg, parse_args, parse_body, without


def test_arguments_are_decoded_and_repeats_become_lists() -> None:
    assert parse_args(b"a=1&b=x+y%21&a=2&flag&empty=") == {
        "a": ["1", "2"],
        "b": "x y!",
        "flag": True,
        "empty": "",
    }


def test_one_argument_is_found_without_decoding_the_rest() -> None:
    assert arg(b"q=1&apikey=k", "apikey", b"apikey") == "k"
    assert arg(b"q=1", "apikey", b"apikey") is None
    assert arg(b"api%6Bey=k", "apikey", b"apikey") == "k"


def test_removing_an_argument_keeps_the_others_as_spelled() -> None:
    assert without(b"a=%20&apikey=k&b=1&apikey=j", "apikey") == b"a=%20&b=1"
    assert without(b"api%6Bey=k", "apikey") == b""


def test_a_form_body_is_read_and_rewritten() -> None:
    body = parse_body("application/x-www-form-urlencoded", b"a=1&k=v")
    assert body.args == {"a": "1", "k": "v"}
    assert body.without("k") == b"a=1"
    assert body.without("missing") is None


def test_a_json_object_is_read_and_rewritten() -> None:
    body = parse_body("application/json; charset=utf-8", b'{"k": "v", "n": [1]}')
    assert body.args == {"k": "v", "n": [1]}
    assert orjson.loads(body.without("k") or b"") == {"n": [1]}


def test_a_json_array_or_bad_json_has_no_arguments() -> None:
    assert parse_body("application/json", b"[1, 2]").args == {}
    assert parse_body("application/json", b"{").args == {}


def test_a_multipart_form_is_read_and_rewritten() -> None:
    raw = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="k"\r\n\r\n'
        b"v\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"data\r\n"
        b"--XyZ--\r\n"
    )
    body = parse_body('multipart/form-data; boundary="XyZ"', raw)
    assert body.args == {"k": "v", "f": "data"}
    rewritten = body.without("k")
    assert rewritten is not None
    assert b'name="k"' not in rewritten
    assert parse_body("multipart/form-data; boundary=XyZ", rewritten).args == {
        "f": "data"
    }


def test_other_bodies_have_no_arguments() -> None:
    assert parse_body("text/plain", b"k=v").args == {}
    assert parse_body("application/json", b"").args == {}
