"""Upstream header rewrites: encoded once, combined in plugin order."""

from __future__ import annotations

from data_plane.plugins.base import (
    NO_REWRITE,
    HeaderRewrite,
    RequestContext,
    response_header,
)


def test_a_rewrite_encodes_its_lines_and_names_what_it_replaces() -> None:
    rewrite = HeaderRewrite.of([("X-Consumer-ID", "42"), ("X-Anonymous", None)])
    assert rewrite.block == b"X-Consumer-ID: 42\r\n"
    assert rewrite.names == {b"x-consumer-id", b"x-anonymous"}


def test_a_later_rewrite_wins_on_a_shared_name() -> None:
    first = HeaderRewrite.of([("X-A", "1"), ("X-B", "1")])
    second = HeaderRewrite.of([("x-a", None), ("X-C", "2")])
    combined = first.then(second)
    assert combined.block == b"X-B: 1\r\nX-C: 2\r\n"
    assert combined.names == {b"x-a", b"x-b", b"x-c"}


def test_a_later_rewrite_replaces_a_line_that_was_only_added() -> None:
    added = HeaderRewrite.adding((("Vary", "Origin"),))
    combined = added.then(HeaderRewrite.of((("Vary", "Accept"),)))
    assert combined.block == b"Vary: Accept\r\n"


def test_rewrites_on_different_names_keep_both_blocks_in_order() -> None:
    first = HeaderRewrite.of([("X-A", "1"), ("X-B", None)])
    combined = first.then(HeaderRewrite.of([("X-C", "3")]))
    assert combined.block == b"X-A: 1\r\nX-C: 3\r\n"
    assert combined.written == {b"x-a", b"x-c"}
    assert combined.names == {b"x-a", b"x-b", b"x-c"}


def test_line_breaks_in_a_value_cannot_start_another_header() -> None:
    rewrite = HeaderRewrite.of([("X-Consumer-Username", "eve\r\nX-Admin: yes")])
    assert rewrite.block == b"X-Consumer-Username: eve  X-Admin: yes\r\n"


def test_values_are_sent_as_utf8() -> None:
    assert HeaderRewrite.of([("X-Name", "Zoë")]).block == "X-Name: Zoë\r\n".encode()


def test_a_context_starts_without_rewrite_and_accumulates() -> None:
    ctx = RequestContext("GET", "/", {}, "127.0.0.1")
    assert ctx.rewrite is NO_REWRITE
    ctx.set_upstream_header("X-A", "1")
    ctx.rewrite_upstream(HeaderRewrite.of([("X-B", "2")]))
    assert ctx.rewrite.block == b"X-A: 1\r\nX-B: 2\r\n"


def test_an_adding_rewrite_replaces_nothing_and_survives_then() -> None:
    added = HeaderRewrite.adding((("Vary", "Origin"),))
    assert added.names == frozenset()
    assert added.block == b"Vary: Origin\r\n"
    assert NO_REWRITE.then(added) is added
    both = added.then(HeaderRewrite.of((("X-A", "1"),)))
    assert both.block == b"Vary: Origin\r\nX-A: 1\r\n"
    assert both.names == frozenset({b"x-a"})


def test_a_removal_then_an_addition_keeps_the_added_line() -> None:
    rewrite = HeaderRewrite.of((("X-A", None),)).then(
        HeaderRewrite.adding((("X-A", "2"),))
    )
    assert rewrite.names == frozenset({b"x-a"})
    assert rewrite.block == b"X-A: 2\r\n"


def test_response_header_finds_the_last_value() -> None:
    lines = [b"X-A", b": ", b"1", b"\r\n", b"x-a", b": ", b"2", b"\r\n"]
    assert response_header(lines, b"x-a") == b"2"
    assert response_header(lines, b"x-b") is None
