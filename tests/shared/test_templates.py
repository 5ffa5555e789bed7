"""Request-transformer templates: what parses and how it renders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.templates import check, parse


class _Request:
    """A request's tables, as a node gives them to templates."""

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        captures: Mapping[int | str, str | None] | None = None,
    ) -> None:
        self.headers = headers or {}
        self.query_params = query or {}
        self.uri_captures = captures or {}


def _render(source: str, request: _Request | None = None) -> str:
    return parse(source).render(request or _Request())


def test_text_without_placeholders_is_static() -> None:
    assert parse("plain $ text").static == "plain $ text"
    assert parse("a $(headers.x)").static is None


def test_headers_are_read_in_any_case_with_underscores_for_dashes() -> None:
    request = _Request(headers={"x-user-id": "7"})
    assert _render("$(headers.x_user_id)", request) == "7"
    assert _render('$(headers["X-User-Id"])', request) == "7"
    assert _render("id=$(headers.x_user_id);", request) == "id=7;"


def test_query_params_render_flags_and_repeats() -> None:
    request = _Request(query={"a": "1", "flag": True, "many": ["x", "y"]})
    assert _render("$(query_params.a)", request) == "1"
    assert _render('$(query_params["flag"])', request) == "true"
    assert _render("$(query_params.many)", request) == "y"


def test_uri_captures_are_read_by_number_and_by_name() -> None:
    request = _Request(captures={1: "ann", "user": "ann", 2: None})
    assert _render("$(uri_captures[1])", request) == "ann"
    assert _render("$(uri_captures.user)", request) == "ann"
    assert _render('$(uri_captures["user"])', request) == "ann"
    assert _render('$(uri_captures["1"])', request) == ""
    assert _render("$(uri_captures[2])", request) == ""


def test_absent_values_render_as_nothing_and_or_falls_back() -> None:
    request = _Request(headers={"x-empty": ""})
    assert _render("[$(headers.none)]", request) == "[]"
    assert _render('$(headers.none or "none")', request) == "none"
    # An empty header is a value: Lua's only false values are nil and false.
    assert _render('$(headers.x_empty or "none")', request) == ""
    assert _render('$(headers.x_empty and "set")', request) == "set"
    assert _render("$(not headers.none)", request) == "true"
    assert _render("$(shared.anything or 1)", request) == "1"


def test_a_quoted_placeholder_writes_a_literal_placeholder() -> None:
    assert _render("$('$(headers.x)')") == "$(headers.x)"
    assert _render('$("tab\\there")') == "tab\there"


def test_an_unclosed_placeholder_is_text() -> None:
    assert parse("$(headers.x").static == "$(headers.x"
    assert _render("$( $(1)", _Request()) == "$( 1"


@pytest.mark.parametrize(
    "source",
    [
        "$()",
        "$(headers)",
        "$(headers.a.b)",
        "$(string.upper(headers.a))",
        '$(headers.a .. "x")',
        "$(headers.a == 1)",
        "$(headers:lower())",
        '$("unfinished)',
        "$(function() end)",
        "$([[long]])",
    ],
)
def test_what_portico_cannot_render_is_refused(source: str) -> None:
    with pytest.raises(ValidationError):
        parse(source)
    reason = check(source)
    assert reason is not None and source in reason
