"""Run the request-transformer plugin's header and query changes like Kong.

For headers and for the query string alike, in Kong's order: remove the
`remove` names; rename each `rename` name that is present; replace each
`replace` name that is present; add each `add` name that is absent; append
every `append` value (another value beside those there). Header names
compare case-insensitively, query names exactly.

Not applied, and logged when a config asks for them: the body changes,
`replace.uri`, `http_method`, changes to `Host`, and `$(...)` templates in
values (sent as written). Remove when the request body and the upstream
target can be changed by plugins.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_plus

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)
from data_plane.plugins.response_transformer import pairs

logger = logging.getLogger(__name__)

PRIORITY = 801
_PARTS = ("remove", "rename", "replace", "add", "append")


def _encode(name: str, value: str) -> bytes:
    return f"{quote(name, safe='')}={quote(value, safe='')}".encode("ascii")


class RequestTransformer:
    """One request-transformer plugin entity, compiled."""

    name = "request-transformer"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        sections = {part: config.get(part) or {} for part in _PARTS}

        def headers(part: str) -> list[tuple[str, str]]:
            # Portico writes the upstream's Host itself: it is left alone.
            found = pairs(sections[part].get("headers"))
            return [(n, v) for n, v in found if n.lower() != "host"]

        removed = [
            str(n)
            for n in sections["remove"].get("headers") or ()
            if str(n).lower() != "host"
        ]
        self._header_removal = HeaderRewrite.of((name, None) for name in removed)
        self._rename = [(o.lower(), o, n) for o, n in headers("rename")]
        self._replace = [(n.lower(), n, v) for n, v in headers("replace")]
        self._add = [(n.lower(), n, v) for n, v in headers("add")]
        self._appended = HeaderRewrite.adding(headers("append"))
        self._headers = bool(
            removed or self._rename or self._replace or self._add
        ) or bool(self._appended.lines)

        self._query_remove = [
            str(n) for n in sections["remove"].get("querystring") or ()
        ]
        self._query_rename = pairs(sections["rename"].get("querystring"))
        self._query_replace = pairs(sections["replace"].get("querystring"))
        self._query_add = pairs(sections["add"].get("querystring"))
        self._query_append = pairs(sections["append"].get("querystring"))
        self._query = bool(
            self._query_remove
            or self._query_rename
            or self._query_replace
            or self._query_add
            or self._query_append
        )

        ignored = [f"{part}.body" for part in _PARTS if sections[part].get("body")] + [
            f"{part}.headers (Host)"
            for part in _PARTS
            if any(
                str(entry).partition(":")[0].lower() == "host"
                for entry in sections[part].get("headers") or ()
            )
        ]
        if sections["replace"].get("uri"):
            ignored.append("replace.uri")
        if config.get("http_method"):
            ignored.append("http_method")
        if ignored:
            logger.warning(
                "request-transformer: %s not applied by this data plane node",
                ", ".join(ignored),
            )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Change the headers and the query string sent upstream."""
        if self._headers:
            ctx.rewrite_upstream(self._header_changes(ctx.headers))
        if self._query:
            query = self._query_changes(ctx.query)
            if query is not None:
                ctx.query = query
        return None

    def _header_changes(self, given: Mapping[str, str]) -> HeaderRewrite:
        """Return the rewrite for the request's headers, in Kong's order."""
        removal = self._header_removal
        values = {k: v for k, v in given.items() if k.encode() not in removal.names}
        changes: list[tuple[str, str | None]] = []
        for lowered, old, new in self._rename:
            value = values.pop(lowered, None)
            if value is not None:
                changes += ((old, None), (new, value))
                values[new.lower()] = value
        for lowered, name, value in self._replace:
            if lowered in values:
                changes.append((name, value))
                values[lowered] = value
        for lowered, name, value in self._add:
            if lowered not in values:
                changes.append((name, value))
                values[lowered] = value
        return removal.then(HeaderRewrite.of(changes)).then(self._appended)

    def _query_changes(self, query: bytes) -> bytes | None:
        """Return the changed query string, or None when nothing changes."""
        # (decoded name, encoded piece), in the order they came
        params: list[tuple[str, bytes]] = []
        for piece in query.split(b"&"):
            if piece:
                raw = piece.partition(b"=")[0].decode("latin-1")
                params.append((unquote_plus(raw), piece))
        before = list(params)

        removed = set(self._query_remove)
        params = [p for p in params if p[0] not in removed]
        for old, new in self._query_rename:
            moved = [p for p in params if p[0] == old]
            if moved:
                params = [p for p in params if p[0] not in (old, new)]
                for _, piece in moved:
                    _, sep, rest = piece.partition(b"=")
                    params.append((new, quote(new, safe="").encode() + sep + rest))
        for name, value in self._query_replace:
            if any(p[0] == name for p in params):
                at = next(i for i, p in enumerate(params) if p[0] == name)
                params = [p for p in params if p[0] != name]
                params.insert(at, (name, _encode(name, value)))
        for name, value in self._query_add:
            if not any(p[0] == name for p in params):
                params.append((name, _encode(name, value)))
        for name, value in self._query_append:
            params.append((name, _encode(name, value)))
        if params == before:
            return None
        return b"&".join(piece for _, piece in params)
