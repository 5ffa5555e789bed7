"""Read a request's arguments the way Kong's PDK does: query string and body.

`name=value` pairs are split on `&` and percent-decoded, `+` as a space. A
name given once maps to its value, a name without `=` to True, a repeated
name to the list of its values (Kong's tables, which its plugins treat as
"duplicate"). Bodies are read for three types: urlencoded forms, JSON
objects and multipart forms; any other body has no arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import orjson

Value = str | bool | list[str | bool]

_DISPOSITION_NAME = re.compile(rb'(?i)content-disposition:[^\r\n]*?\bname="([^"]*)"')
_BOUNDARY = re.compile(r'(?i)boundary="?([^";,]+)"?')


def _decode(raw: bytes) -> str:
    return unquote_plus(raw.decode("latin-1"), encoding="utf-8", errors="replace")


def _add(args: dict[str, Value], name: str, value: str | bool) -> None:
    known = args.get(name)
    if known is None:
        args[name] = value
    elif isinstance(known, list):
        known.append(value)
    else:
        args[name] = [known, value]


def parse_args(encoded: bytes) -> dict[str, Value]:
    """Return the arguments of a query string or urlencoded form."""
    args: dict[str, Value] = {}
    for part in encoded.split(b"&"):
        if not part:
            continue
        name, equals, value = part.partition(b"=")
        _add(args, _decode(name), _decode(value) if equals else True)
    return args


def arg(encoded: bytes, name: str, raw_name: bytes) -> Value | None:
    """Return one argument of a query string, or None when it is absent.

    `raw_name` is `name` encoded: without it, and without any escape, the
    string cannot hold the name and is not decoded at all.
    """
    if raw_name not in encoded and b"%" not in encoded and b"+" not in encoded:
        return None
    return parse_args(encoded).get(name)


def without(encoded: bytes, name: str) -> bytes:
    """Return a query string or form without the argument `name`.

    The other arguments keep their spelling, byte for byte.
    """
    kept = [
        part
        for part in encoded.split(b"&")
        if part and _decode(part.partition(b"=")[0]) != name
    ]
    return b"&".join(kept)


@dataclass(frozen=True)
class Body:
    """A request body and the arguments read from it."""

    raw: bytes
    kind: str = ""  # "form", "json", "multipart"; "": no arguments
    args: Mapping[str, Any] = field(default_factory=dict)
    boundary: bytes = b""

    def without(self, name: str) -> bytes | None:
        """Return the body without the argument `name`; None if unchanged."""
        if name not in self.args:
            return None
        if self.kind == "form":
            return without(self.raw, name)
        if self.kind == "json":
            return orjson.dumps({k: v for k, v in self.args.items() if k != name})
        delimiter = b"--" + self.boundary
        pieces = self.raw.split(delimiter)
        kept = [pieces[0]] + [p for p in pieces[1:] if _part_name(p) != name]
        return delimiter.join(kept)


NO_BODY = Body(b"")


def parse_body(content_type: str, raw: bytes | None) -> Body:
    """Return the arguments of a body of `content_type` (empty if unreadable)."""
    if not raw:
        return NO_BODY
    mime = content_type.partition(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return Body(raw, "form", parse_args(raw))
    if mime == "application/json":
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Body(raw)
        return Body(raw, "json", document) if isinstance(document, dict) else Body(raw)
    if mime == "multipart/form-data":
        found = _BOUNDARY.search(content_type)
        if found is None:
            return Body(raw)
        boundary = found.group(1).encode("latin-1")
        return Body(raw, "multipart", _multipart(raw, boundary), boundary)
    return Body(raw)


def _part_name(part: bytes) -> str | None:
    head = part.partition(b"\r\n\r\n")[0]
    found = _DISPOSITION_NAME.search(head)
    return found.group(1).decode("utf-8", "replace") if found else None


def _multipart(raw: bytes, boundary: bytes) -> dict[str, Value]:
    """Return the fields of a multipart form by name (files included)."""
    args: dict[str, Value] = {}
    pieces = raw.split(b"--" + boundary)
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # the closing delimiter
        name = _part_name(piece)
        if name is None:
            continue
        content = piece.partition(b"\r\n\r\n")[2]
        if content.endswith(b"\r\n"):
            content = content[:-2]
        _add(args, name, content.decode("utf-8", "replace"))
    return args
