"""The route entity: which requests reach a service, under Kong's rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import ascii_letters, digits
from typing import Any

from shared.errors import InvalidParameter
from shared.schema.fields import Field
from shared.schema.typedefs import (
    boolean,
    check_header_name,
    check_route_host,
    foreign,
    name_field,
    string,
    tags_field,
    timestamp_field,
    uuid_field,
)

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(ascii_letters + digits + "-._~")
# PCRE writes a named group `(?<name>...)`; Python's `re` wants `(?P<name>...)`.
_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


def compile_path_regex(path: str) -> re.Pattern[str]:
    """Return the compiled regex of a ``~`` route path, PCRE names translated.

    Kong anchors a regex path at the start of the request path, so use the
    result with :meth:`re.Pattern.match`. Raises :exc:`re.error` when invalid.
    """
    return re.compile(_PCRE_NAMED_GROUP.sub("(?P<", path[1:]))


def _remove_dot_segments(path: str) -> str:
    # RFC 3986, section 5.2.4, on an absolute path.
    output: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def normalize_path(path: str) -> str:
    """Return `path` as Kong's router compares it.

    Percent-encoded unreserved characters are decoded, other escapes are
    uppercased, and ``.`` and ``..`` segments are resolved.
    """

    def escape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _remove_dot_segments(_ESCAPE.sub(escape, path))


def _check_route_path(value: str) -> str | None:
    if not (value.startswith("/") or value.startswith("~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if "//" in value:
        return "must not have empty segments"
    if _BAD_PERCENT.search(value):
        return f"invalid url-encoded value in '{value}'"
    if value.startswith("~"):
        try:
            compile_path_regex(value)
        except re.error as exc:
            return f"invalid regex: '{value[1:]}' ({exc})"
        return None
    # A path the router never sees (it normalises requests) would never match.
    normalized = normalize_path(value)
    if normalized != value:
        return f"non-normalized path, consider use '{normalized}' instead"
    return None


def _check_headers_key(value: str) -> str | None:
    if value.lower() == "host":
        return "cannot contain 'host' header; use 'hosts' instead"
    return check_header_name(value)


def _check_header_value(value: str) -> str | None:
    # Kong reads a value starting with "~*" as a case-insensitive regex.
    if value.startswith("~*"):
        try:
            re.compile(value[2:], re.IGNORECASE)
        except re.error as exc:
            return f"invalid regex: '{value[2:]}' ({exc})"
    return None


def _unsupported_stream(value: Any) -> str:
    return "stream routing is not supported by Portico (it proxies HTTP); expected null"


_FIELDS = {
    "id": uuid_field(),
    "created_at": timestamp_field(),
    "updated_at": timestamp_field(),
    "name": name_field(),
    "protocols": Field(
        "array",
        required=True,
        default=["http", "https"],
        len_min=1,
        elements=Field(
            "string",
            one_of=("http", "https"),
            one_of_reason="expected one of: http, https (Portico proxies HTTP)",
        ),
    ),
    "methods": Field(
        "array",
        elements=Field(
            "string",
            match=r"[A-Z]+",
            match_reason="invalid value: a method is made of uppercase letters",
        ),
    ),
    "hosts": Field("array", elements=string(checks=(("host", check_route_host),))),
    "paths": Field("array", elements=string(checks=(("regex", _check_route_path),))),
    "headers": Field(
        "map",
        keys=string(checks=(("header_name", _check_headers_key),)),
        values=Field(
            "array",
            len_min=1,
            elements=string(checks=(("regex", _check_header_value),)),
        ),
    ),
    "https_redirect_status_code": Field(
        "integer", required=True, default=426, one_of=(426, 301, 302, 307, 308)
    ),
    "regex_priority": Field("integer", required=True, default=0),
    "strip_path": boolean(True),
    "path_handling": Field("string", required=True, default="v0", one_of=("v0", "v1")),
    "preserve_host": boolean(False),
    "request_buffering": boolean(True),
    "response_buffering": boolean(True),
    "snis": Field("array", elements=string(checks=(("host", check_route_host),))),
    "sources": Field("any", checks=(("unsupported", _unsupported_stream),)),
    "destinations": Field("any", checks=(("unsupported", _unsupported_stream),)),
    "tags": tags_field(),
    "service": foreign("services"),
}

_MATCHERS = ("methods", "hosts", "headers", "paths", "snis")


def check_route(route: Mapping[str, Any], path: str) -> list[InvalidParameter]:
    """Return the whole-route rules `route` breaks, with Kong's wording."""
    errors = []
    protocols = route["protocols"]
    if not any(route.get(field) for field in _MATCHERS):
        names = "'methods', 'hosts', 'headers', 'paths'"
        if "https" in protocols:
            names += ", 'snis'"
        which = " or ".join(f"'{p}'" for p in protocols)
        reason = f"must set one of {names} when 'protocols' is {which}"
        errors.append(InvalidParameter("@entity", "at_least_one_of", reason))
    if route.get("snis") and "https" not in protocols:
        reason = "'snis' can only be set when 'protocols' is 'https'"
        errors.append(InvalidParameter("snis", "conditional", reason))
    return errors


RECORD = Field("record", required=True, fields=_FIELDS, record_checks=(check_route,))
