"""Run the response-transformer plugin's header changes the way Kong does.

In Kong's order, against the headers of the response as it came: remove
the `remove` headers; rename each `rename` header that is present; replace
each `replace` header that is present; add each `add` header that is
absent; append every `append` header (a line of its own, whatever is
there). Names compare case-insensitively.

The JSON body changes (`json`, `json_types`) need a body phase that
plugins do not have: they are not applied, and a config that asks for them
is logged when it is compiled. Remove when the response body can be
transformed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)

logger = logging.getLogger(__name__)

PRIORITY = 800


def pairs(values: Sequence[str] | None) -> list[tuple[str, str]]:
    """Split `name:value` entries at their first colon."""
    found = []
    for entry in values or ():
        name, _, value = str(entry).partition(":")
        found.append((name, value))
    return found


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return config.get(name) or {}


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
        self._removal = HeaderRewrite.of((name, None) for name in removed)
        self._appended = HeaderRewrite.adding(
            pairs(_section(config, "append").get("headers"))
        )
        # Without a change that depends on the response, one rewrite serves.
        self._fixed = (
            None
            if self._rename or self._replace or self._add
            else self._removal.then(self._appended)
        )
        if any(
            _section(config, part).get(field)
            for part in ("remove", "rename", "replace", "add", "append")
            for field in ("json", "json_types")
        ):
            logger.warning(
                "response-transformer: json body changes are not applied "
                "by this data plane node; header changes are"
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
