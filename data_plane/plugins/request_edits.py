"""Apply the request-transformer's edits to arguments and bodies, as Kong does.

An :class:`Edits` holds one part's changes (remove, rename, replace, add,
append) with their values rendered. They apply, in that order, to:

- arguments (a query string or an urlencoded form) by :func:`edit_args`:
  arguments left alone keep their spelling, byte for byte;
- a JSON object by :func:`edit_json`: values are set as strings, and an
  append makes an array of what was there and the new value;
- a multipart form by :func:`edit_multipart`, in the order Kong's plugin
  uses for it (rename before remove) and without appends, which Kong does
  not make there either.

Remove, rename and replace apply only to a body that has content; add and
append also make a body of an empty one. Each function returns None when
the input is left as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

import orjson

JSON, MULTIPART, FORM = "json", "multipart", "form"

_BOUNDARY = re.compile(r'(?i);\s*boundary="?([^";,\s]+)"?')
_PART_NAME = re.compile(rb'(?i)content-disposition:[^\r\n]*?\bname="([^"]*)"')
# What a query string may hold unescaped (RFC 3986 3.4), "%" included: the
# pieces moved into it are escaped already.
_QUERY_SAFE = "!$&'()*+,;=:@/?%-._~"


@dataclass(frozen=True, slots=True)
class Edits:
    """One part's changes with their values rendered, in Kong's order."""

    remove: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    append: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.rename or self.replace or self.add) or bool(
            self.append
        )


def content_kind(content_type: str) -> str | None:
    """Return the kind of body Kong's plugin edits for a Content-Type."""
    lowered = content_type.lower()
    if "application/json" in lowered:
        return JSON
    if "multipart/form-data" in lowered:
        return MULTIPART
    if "application/x-www-form-urlencoded" in lowered:
        return FORM
    return None


def _encode(name: str, value: str) -> bytes:
    return f"{quote(name, safe='')}={quote(value, safe='')}".encode("ascii")


def edit_args(encoded: bytes, edits: Edits) -> bytes | None:
    """Return a query string or form with `edits` made; None if unchanged.

    Renamed arguments move to the end, replaced ones stay where the first
    of them was, added and appended ones come last.
    """
    # (decoded name, encoded piece), in the order they came
    params: list[tuple[str, bytes]] = []
    for piece in encoded.split(b"&"):
        if piece:
            raw = piece.partition(b"=")[0].decode("latin-1")
            params.append((unquote_plus(raw), piece))
    before = list(params)

    removed = set(edits.remove)
    params = [p for p in params if p[0] not in removed]
    for old, new in edits.rename:
        moved = [p for p in params if p[0] == old]
        if moved and old != new:
            params = [p for p in params if p[0] not in (old, new)]
            for _, piece in moved:
                _, sep, rest = piece.partition(b"=")
                params.append((new, quote(new, safe="").encode() + sep + rest))
    for name, value in edits.replace:
        if any(p[0] == name for p in params):
            at = next(i for i, p in enumerate(params) if p[0] == name)
            params = [p for p in params if p[0] != name]
            params.insert(at, (name, _encode(name, value)))
    for name, value in edits.add:
        if not any(p[0] == name for p in params):
            params.append((name, _encode(name, value)))
    for name, value in edits.append:
        params.append((name, _encode(name, value)))
    if params == before:
        return None
    return b"&".join([piece for _, piece in params])


def merge_form(query: bytes, form: bytes) -> bytes | None:
    """Return `query` with the arguments of the urlencoded `form` after it.

    A name both have ends with several values, as Kong's GET rule wants.
    None when the form has no argument.
    """
    moved = [
        quote(piece, safe=_QUERY_SAFE).encode("ascii")
        for piece in form.split(b"&")
        if piece and not piece.startswith(b"=")
    ]
    if not moved:
        return None
    return b"&".join([query, *moved] if query else moved)


def _truthy(document: dict[str, Any], name: str) -> bool:
    # Lua's truth of the decoded value: JSON null is a value there, only
    # false and absence are not.
    return name in document and document[name] is not False


def edit_json(raw: bytes, edits: Edits) -> bytes | None:
    """Return a JSON object body with `edits` made; None if unchanged.

    A body that is not a JSON object is left alone; an empty one is taken
    as `{}`.
    """
    document: dict[str, Any] = {}
    if raw:
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(decoded, dict):
            return None
        document = decoded
    changed = False
    if raw:
        for name in edits.remove:
            if name in document:
                del document[name]
                changed = True
        for old, new in edits.rename:
            if old != new and _truthy(document, old):
                document[new] = document.pop(old)
                changed = True
        for name, value in edits.replace:
            if _truthy(document, name):
                document[name] = value
                changed = True
    for name, value in edits.add:
        if not _truthy(document, name):
            document[name] = value
            changed = True
    for name, value in edits.append:
        there = document.get(name)
        if isinstance(there, list):
            there.append(value)
        else:
            document[name] = [value] if there is None else [there, value]
        changed = True
    return orjson.dumps(document) if changed else None


class _Part:
    """One part of a multipart form: its name, header lines and content."""

    __slots__ = ("name", "head", "content")

    def __init__(self, name: str | None, head: bytes, content: bytes) -> None:
        self.name = name
        self.head = head
        self.content = content

    @classmethod
    def simple(cls, name: str, value: bytes) -> _Part:
        """Return a plain form field, like Kong's multipart `set_simple`."""
        quoted = name.replace('"', "%22")
        head = f'Content-Disposition: form-data; name="{quoted}"'.encode()
        return cls(name, head, value)

    def encode(self, delimiter: bytes) -> bytes:
        """Return the part as it goes in the body, delimiter first."""
        head = self.head + b"\r\n" if self.head else b""
        return b"%s\r\n%s\r\n%s\r\n" % (delimiter, head, self.content)


def _parts(raw: bytes, boundary: bytes) -> list[_Part]:
    """Return the parts of a multipart body; what precedes the first is lost."""
    parts: list[_Part] = []
    for piece in raw.split(b"--" + boundary)[1:]:
        if piece.startswith(b"--"):
            break  # the closing delimiter
        line_end = piece.find(b"\r\n")
        if line_end == -1:
            continue
        rest = piece[line_end + 2 :]
        if rest.startswith(b"\r\n"):
            head, content = b"", rest[2:]
        else:
            head, _, content = rest.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        found = _PART_NAME.search(head)
        name = found.group(1).decode("utf-8", "replace") if found else None
        parts.append(_Part(name, head, content))
    return parts


def edit_multipart(raw: bytes, content_type: str, edits: Edits) -> bytes | None:
    """Return a multipart body with `edits` made; None if unchanged.

    Renamed and replaced fields become plain fields (a file's name and type
    are lost, as in Kong); a body whose Content-Type names no boundary is
    left alone.
    """
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    boundary = found.group(1).encode("latin-1")
    parts = _parts(raw, boundary) if raw else []

    def first(name: str) -> int | None:
        return next((i for i, p in enumerate(parts) if p.name == name), None)

    def delete(name: str) -> None:
        parts[:] = [p for p in parts if p.name != name]

    def set_simple(name: str, value: bytes) -> None:
        at = first(name)
        if at is None:
            parts.append(_Part.simple(name, value))
        else:
            parts[at] = _Part.simple(name, value)

    changed = False
    if raw:
        for old, new in edits.rename:
            at = first(old)
            if at is not None and old != new:
                set_simple(new, parts[at].content)
                delete(old)
                changed = True
        for name in edits.remove:
            if first(name) is not None:
                delete(name)
                changed = True
        for name, value in edits.replace:
            if first(name) is not None:
                delete(name)
                set_simple(name, value.encode())
                changed = True
    for name, value in edits.add:
        if first(name) is None:
            set_simple(name, value.encode())
            changed = True
    if not changed:
        return None
    delimiter = b"--" + boundary
    return b"".join([part.encode(delimiter) for part in parts]) + delimiter + b"--\r\n"
