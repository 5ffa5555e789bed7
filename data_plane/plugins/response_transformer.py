"""Run the response-transformer plugin the way Kong 3.x does.

Headers, in Kong's order, against the headers of the response as it came:
remove the `remove` headers; rename each `rename` header that is present;
replace each `replace` header that is present; add each `add` header that
is absent; append every `append` header (a line of its own, whatever is
there). Names compare case-insensitively.

The JSON body (`json` entries, with `json_types`), when the response's
Content-Type, once every plugin changed the head, is `application/json`
(parameters allowed; `+json` types are not JSON to Kong) and the body is a
JSON object. In the same order: remove each key; rename each key that is
present, null or false included; replace each key whose value is present
and not false; add each key that is absent or false; append to each key (a
string becomes a list of it and the value, a list grows, an object takes
the value under the next number key, anything else becomes a list of the
value alone). Keys are top-level names: a dot is part of the name, as in
Kong. An entry splits at its first run of colons; values are taken as
Kong's encoding leaves them (backslashes doubled, control characters
escaped, an empty value the string "null"), then cast by `json_types`:
`number` as Lua's tonumber reads it, to 14 significant digits (an entry
that is no number is skipped), `boolean` true for "true" only, false for
anything else. The body goes out re-encoded, keys in their order.

Left as they came, like Kong: invalid JSON, an array or a scalar, and a
body with a Content-Encoding (Kong 3.x cannot read a gzip body and passes
it on). Unlike Kong, which holds any body whole, a body over the data
plane's hold limit (:data:`data_plane.proxy.hold.HOLD_LIMIT`) goes on
unchanged.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import orjson

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    Plugin,
    RequestContext,
)

logger = logging.getLogger(__name__)

PRIORITY: Final = 800
_PARTS = ("remove", "rename", "replace", "add", "append")


def pairs(values: Sequence[str] | None) -> list[tuple[str, str]]:
    """Split `name:value` entries at their first colon."""
    found = []
    for entry in values or ():
        name, _, value = str(entry).partition(":")
        found.append((name, value))
    return found


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return config.get(name) or {}


def build(config: Mapping[str, Any], index: ConfigIndex) -> Plugin:
    """Return the plugin for `config`; only json changes need a body phase."""
    if any(_section(config, part).get("json") for part in _PARTS):
        return JsonResponseTransformer(config, index)
    return ResponseTransformer(config, index)


class ResponseTransformer:
    """One response-transformer plugin entity, compiled."""

    name = "response-transformer"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        removed = [str(n) for n in _section(config, "remove").get("headers") or ()]
        self._rename = [
            (old.lower().encode("latin-1"), old, new)
            for old, new in pairs(_section(config, "rename").get("headers"))
        ]
        self._replace = [
            (name.lower().encode("latin-1"), name, value)
            for name, value in pairs(_section(config, "replace").get("headers"))
        ]
        self._add = [
            (name.lower().encode("latin-1"), name, value)
            for name, value in pairs(_section(config, "add").get("headers"))
        ]
        self._removal = HeaderRewrite.of([(name, None) for name in removed])
        self._appended = HeaderRewrite.adding(
            pairs(_section(config, "append").get("headers"))
        )
        # Without a change that depends on the response, one rewrite serves.
        self._fixed = (
            None
            if self._rename or self._replace or self._add
            else self._removal.then(self._appended)
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Let the request go on: this plugin changes responses."""
        return None

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Return the header changes for this response."""
        if self._fixed is not None:
            return self._fixed
        values: dict[bytes, bytes] = {}
        for start in range(0, len(headers), 4):
            values[headers[start].lower()] = headers[start + 2]
        changes: list[tuple[str, str | None]] = []
        for lowered, old, new in self._rename:
            value = values.get(lowered)
            if value is not None:
                changes += ((new, value.decode("latin-1")), (old, None))
        for lowered, name, text in self._replace:
            if lowered in values:
                changes.append((name, text))
        for lowered, name, text in self._add:
            if lowered not in values:
                changes.append((name, text))
        return self._removal.then(HeaderRewrite.of(changes)).then(self._appended)


# An RFC 2045 token, and a media type with its parameters, as Kong parses
# them (kong.tools.mime_type).
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z|~]+"
_PARAMETER = rf'[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"[^"\x00-\x1f\x7f]*")'
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})(?:{_PARAMETER})*")
_SPACE = " \t\n\v\f\r"


@lru_cache(maxsize=256)
def is_json(content_type: bytes) -> bool:
    """Tell whether a Content-Type is JSON as Kong's plugin decides it.

    One of its comma-separated media types must be application/json
    exactly, any case, with well-formed parameters if any.
    """
    for part in content_type.decode("latin-1").split(","):
        found = _MEDIA_TYPE.fullmatch(part.strip(_SPACE))
        if found and found[1].lower() == "application" and found[2].lower() == "json":
            return True
    return False


def _entry(text: str) -> tuple[str, str | None] | None:
    """Split a json entry as Kong does, at its first run of colons.

    Returns the name and the value (None when empty); None without a name.
    """
    name, _, rest = text.partition(":")
    if not name:
        return None
    return name, rest.lstrip(":") or None


# Kong encodes a configured value as a JSON string and takes back only the
# quotes and the escaped quotes and slashes: the rest stays escaped.
_KONG_ESCAPES = {code: f"\\u{code:04x}" for code in range(32)} | {
    8: "\\b",
    9: "\\t",
    10: "\\n",
    12: "\\f",
    13: "\\r",
    92: "\\\\",
    127: "\\u007f",
}
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEXADECIMAL = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]+)")


def _number(text: str) -> int | float | None:
    """Read a number as Lua's tonumber does; None when it is none.

    The result keeps the 14 significant digits cjson writes.
    """
    text = text.strip(_SPACE)
    try:
        hexadecimal = _HEXADECIMAL.fullmatch(text)
        if hexadecimal:
            number = float(int(hexadecimal[2], 16))
            if hexadecimal[1] == "-":
                number = -number
        elif _DECIMAL.fullmatch(text):
            number = float(text)
        else:
            return None
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None  # cjson cannot write it
    number = float(f"{number:.14g}")
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _value(text: str | None, json_type: str | None) -> Any:
    """Return a configured value as Kong puts it in a body; None skips it."""
    value = "null" if text is None else text.translate(_KONG_ESCAPES)
    if json_type == "number":
        return _number(value)
    if json_type == "boolean":
        return value == "true"
    return value


def _values(section: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Return the (name, value) changes of a replace, add or append section."""
    types = [str(t) for t in section.get("json_types") or ()]
    found = []
    for position, entry in enumerate(section.get("json") or ()):
        parsed = _entry(str(entry))
        if parsed is None:
            continue
        name, text = parsed
        value = _value(text, types[position] if position < len(types) else None)
        if value is not None:
            found.append((name, value))
    return tuple(found)


def _appended(current: Any, value: Any) -> Any:
    """Return what an appended key holds, as Kong's append_value makes it."""
    if isinstance(current, str):
        return [current, value]
    if isinstance(current, list):
        current.append(value)
        return current
    if isinstance(current, dict):
        # Lua's table.insert on an object: the next free number key.
        key = 1
        while str(key) in current:
            key += 1
        current[str(key)] = value
        return current
    return [value]


class JsonResponseTransformer(ResponseTransformer):
    """A response-transformer entity with json changes: it has a body phase."""

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        super().__init__(config, index)
        entries = [_entry(str(e)) for e in _section(config, "remove").get("json") or ()]
        self._remove_json = tuple(e[0] for e in entries if e is not None)
        entries = [_entry(str(e)) for e in _section(config, "rename").get("json") or ()]
        self._rename_json = tuple(
            (e[0], e[1]) for e in entries if e is not None and e[1] is not None
        )
        self._replace_json = _values(_section(config, "replace"))
        self._add_json = _values(_section(config, "add"))
        self._append_json = _values(_section(config, "append"))

    def wants_body(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> bool:
        """Tell whether the response is JSON (Kong's test), and not encoded."""
        content_type = encoding = None
        for start in range(0, len(headers), 4):
            lowered = headers[start].lower()
            if lowered == b"content-type":
                if content_type is None:  # Kong reads the first one
                    content_type = headers[start + 2]
            elif lowered == b"content-encoding":
                encoding = headers[start + 2]
        if encoding is not None and encoding.strip().lower() != b"identity":
            return False
        return content_type is not None and is_json(content_type)

    def body_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes], body: bytes
    ) -> bytes | None:
        """Return the body with the json changes; None if it is no JSON object."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            logger.debug("response-transformer: the body is not JSON; left as is")
            return None
        if type(document) is not dict:
            return None
        self.change(document)
        return orjson.dumps(document)

    def change(self, document: dict[str, Any]) -> None:
        """Apply the json changes to a JSON object, in Kong's order."""
        for name in self._remove_json:
            document.pop(name, None)
        for old, new in self._rename_json:
            if old in document:
                # Set, then delete: a key renamed to itself is gone, as in Kong.
                document[new] = document[old]
                del document[old]
        for name, value in self._replace_json:
            if name in document and document[name] is not False:
                document[name] = value
        for name, value in self._add_json:
            if document.get(name, False) is False:
                document[name] = value
        for name, value in self._append_json:
            document[name] = _appended(document.get(name), value)
