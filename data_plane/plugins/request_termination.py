"""Run the request-termination plugin the way Kong does.

Every request it applies to is answered with `status_code` (503) and one of:
`body` with `content_type`; `{"message": <message>}`, the message defaulting
to Kong's text for the common statuses (none: an empty body); or, with
`echo`, the request itself as JSON. With `trigger`, only requests that
carry a header or a query argument of that name are answered.

The answer is built once per config, except an echo, which is the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import orjson

from data_plane.plugins import arguments
from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    LocalResponse,
    RequestContext,
)
from data_plane.plugins.identity import header_value

PRIORITY: Final = 2

# Kong's messages for the statuses it has one for.
DEFAULT_MESSAGES = {
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    500: "An unexpected error occurred",
    502: "Bad Gateway",
    503: "Service unavailable",
}


class RequestTermination:
    """One request-termination plugin entity, compiled."""

    name = "request-termination"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._status = int(config.get("status_code") or 503)
        self._message = config.get("message") or DEFAULT_MESSAGES.get(self._status)
        trigger = str(config.get("trigger") or "")
        # Kong reads headers case-insensitively, `_` standing for `-`.
        self._trigger_header = trigger.lower().replace("_", "-")
        self._trigger = (trigger, trigger.encode("utf-8")) if trigger else None
        self._echo = bool(config.get("echo"))
        self._index = index
        body = config.get("body")
        if body is not None:
            content_type = str(config.get("content_type") or "text/plain")
            self._response = LocalResponse(
                self._status,
                str(body).encode("utf-8"),
                content_type=header_value(content_type),
            )
        elif self._message is not None:
            self._response = LocalResponse.message(self._status, self._message)
        else:
            self._response = LocalResponse(self._status, b"", content_type="")

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Answer the request here, unless a trigger is set and absent."""
        if self._trigger is not None and not self._triggered(ctx):
            return None
        if not self._echo:
            return self._response
        request = ctx.request
        if request is None or not _has_body(ctx):
            return self._echoed(ctx, None)
        reading = request.read_body()
        if reading.done():
            return self._echoed(ctx, reading.result())

        deferred: Deferred = asyncio.get_running_loop().create_future()

        def answer(done: asyncio.Future[bytes | None]) -> None:
            if not deferred.done():
                deferred.set_result(self._echoed(ctx, done.result()))

        reading.add_done_callback(answer)
        return deferred

    def _triggered(self, ctx: RequestContext) -> bool:
        """Tell whether the request names the trigger (header or query)."""
        assert self._trigger is not None, "no trigger"
        if self._trigger_header in ctx.headers:
            return True
        name, raw = self._trigger
        return arguments.arg(ctx.query, name, raw) is not None

    def _echoed(self, ctx: RequestContext, raw: bytes | None) -> LocalResponse:
        """Return the request, as Kong's echo shows it."""
        headers = ctx.headers
        host, _, port = headers.get("host", "").rpartition(":")
        if not host or not port.isdigit():
            host, port = headers.get("host", ""), "80"
        body = arguments.parse_body(headers.get("content-type", ""), raw)
        route = self._entity("routes", ctx.route_id)
        service_ref = (route or {}).get("service") or {}
        service = self._entity("services", str(service_ref.get("id")))
        content = {
            "message": self._message,
            "request": {
                "scheme": "http",
                "host": host,
                "port": int(port),
                "headers": dict(headers),
                "query": arguments.parse_args(ctx.query),
                "body": dict(body.args) if body.kind else None,
                "raw_body": raw.decode("utf-8", "replace") if raw else None,
                "method": ctx.method,
                "path": ctx.path,
            },
            "matched_route": route,
            "matched_service": service,
        }
        return LocalResponse(self._status, orjson.dumps(content))

    def _entity(self, kind: str, entity_id: str) -> Mapping[str, Any] | None:
        """Return the entity of this config with this id, for the echo."""
        table: dict[str, Mapping[str, Any]] = self._index.table(f"entities {kind}")
        if not table:
            for entity in self._index.config.get(kind) or ():
                table[str(entity["id"])] = entity
        return table.get(entity_id)


def _has_body(ctx: RequestContext) -> bool:
    headers = ctx.headers
    length = headers.get("content-length")
    return bool(length and length != "0") or "transfer-encoding" in headers
