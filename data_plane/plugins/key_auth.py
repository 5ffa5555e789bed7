"""Run the key-auth plugin the way Kong does.

The key is looked for under each of `key_names` in turn: in the headers
(`key_in_header`), the query string (`key_in_query`), then the body
(`key_in_body`: urlencoded, JSON or multipart forms). Failures answer 401
with `WWW-Authenticate: Key` (or `Key realm="<realm>"`): "No API key found
in request", "Duplicate API key found" when a name is given twice, and
"Unauthorized" for an unknown or expired key; unless `anonymous` names a
consumer to let the request through as.

Keys are found in one dict lookup, the dict built once per config. The body
is read only when a request carries no key in its headers or query string
and `key_in_body` is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

from data_plane.plugins import arguments
from data_plane.plugins.arguments import NO_BODY, Body
from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)
from data_plane.plugins.identity import Anonymous, authenticated, header_value

PRIORITY: Final = 1250


# What a key without a ttl grants: its consumer, credential and headers.
_Grant = tuple[Mapping[str, Any], Mapping[str, Any], HeaderRewrite]


def keys(index: ConfigIndex) -> dict[str, Mapping[str, Any]]:
    """Return the config's key-auth credentials by key, built once per config."""
    table: dict[str, Mapping[str, Any]] = index.table("key-auth credentials")
    credentials = index.config.get("keyauth_credentials") or ()
    if not table and credentials:
        for credential in credentials:
            table[str(credential["key"])] = credential
    return table


class _KeyName:
    """One of `key_names`, spelled for each place it is looked for."""

    __slots__ = ("name", "header", "lowered", "raw", "hide")

    def __init__(self, name: str) -> None:
        self.name = name  # as in the query string and the body
        # Kong reads headers case-insensitively, `_` standing for `-`.
        self.header = name.lower().replace("_", "-")
        self.lowered = self.header.encode("latin-1")
        self.raw = name.encode("utf-8")
        self.hide = HeaderRewrite.of(((self.header, None),))


class KeyAuth:
    """One key-auth plugin entity, compiled."""

    name = "key-auth"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._keys = keys(index)
        self._consumers = index.consumers
        self._names = tuple(_KeyName(str(n)) for n in config.get("key_names") or ())
        self._in_header = config.get("key_in_header") is not False
        self._in_query = config.get("key_in_query") is not False
        self._in_body = bool(config.get("key_in_body"))
        self._hide = bool(config.get("hide_credentials"))
        self._preflight = config.get("run_on_preflight") is not False
        anonymous = config.get("anonymous")
        self._anonymous = (
            Anonymous(str(anonymous), index.consumers) if anonymous else None
        )

        realm = config.get("realm")
        scheme = header_value(f'Key realm="{realm}"') if realm else "Key"
        challenge = (("WWW-Authenticate", scheme),)
        self._no_key = LocalResponse.message(
            401, "No API key found in request", challenge
        )
        self._duplicate = LocalResponse.message(
            401, "Duplicate API key found", challenge
        )
        self._unauthorized = LocalResponse.message(401, "Unauthorized", challenge)
        # Credential id -> its upstream headers; shared by the config's plugins.
        self._rewrites: dict[str, HeaderRewrite] = index.table("key-auth rewrites")
        # Key -> (consumer, credential, upstream headers), made on the key's
        # first use, for keys without a ttl: a known key costs one lookup.
        self._grants: dict[str, _Grant] = index.table("key-auth grants")

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Authenticate the request by its key, or answer 401."""
        if not self._preflight and ctx.method == "OPTIONS":
            return None
        if self._anonymous and ctx.credential is not None and not ctx.anonymous:
            return None  # another auth plugin already identified the client
        return self._search(ctx, 0, None)

    def _search(
        self, ctx: RequestContext, start: int, body: Body | None
    ) -> LocalResponse | Deferred | None:
        """Look for a key from the `start`th name on; read the body if needed.

        `body` is None until the body has been read.
        """
        for position in range(start, len(self._names)):
            key_name = self._names[position]
            value: Any = None
            if self._in_header:
                value = ctx.headers.get(key_name.header)
                if value is not None and _repeated(ctx, key_name.lowered):
                    return self._fail(ctx, self._duplicate)
            if value is None and self._in_query and ctx.query:
                value = arguments.arg(ctx.query, key_name.name, key_name.raw)
            if value is None and self._in_body:
                if body is None:
                    return self._read_body(ctx, position)
                value = body.args.get(key_name.name)
            if isinstance(value, str):
                if self._hide:
                    self._hide_key(ctx, key_name, body)
                return self._authenticate(ctx, value)
            if isinstance(value, list | dict):
                return self._fail(ctx, self._duplicate)
        return self._fail(ctx, self._no_key)

    def _read_body(
        self, ctx: RequestContext, position: int
    ) -> LocalResponse | Deferred | None:
        """Go on searching from `position` once the body is read."""
        request = ctx.request
        if request is None:
            return self._search(ctx, position, NO_BODY)
        reading = request.read_body()
        content_type = ctx.headers.get("content-type", "")
        if reading.done():
            return self._search(ctx, position, _parse(content_type, reading))

        deferred: Deferred = asyncio.get_running_loop().create_future()

        def resume(done: asyncio.Future[bytes | None]) -> None:
            if deferred.done():
                return
            try:
                answer = self._search(ctx, position, _parse(content_type, done))
            except Exception as exc:  # handed to the exchange, which logs it
                deferred.set_exception(exc)
                return
            assert not isinstance(answer, asyncio.Future), "body read twice"
            deferred.set_result(answer)

        reading.add_done_callback(resume)
        return deferred

    def _hide_key(
        self, ctx: RequestContext, key_name: _KeyName, body: Body | None
    ) -> None:
        """Keep the key from the upstream: header, query argument and body."""
        ctx.rewrite_upstream(key_name.hide)
        if ctx.query:
            ctx.query = arguments.without(ctx.query, key_name.name)
        if body is not None and ctx.request is not None:
            replaced = body.without(key_name.name)
            if replaced is not None:
                ctx.request.replace_body(replaced)

    def _authenticate(self, ctx: RequestContext, key: str) -> LocalResponse | None:
        """Let the key's consumer through, or fail."""
        grant = self._grants.get(key)
        if grant is not None:
            ctx.consumer, ctx.credential, headers = grant
            ctx.anonymous = False
            ctx.rewrite_upstream(headers)
            return None
        if not key:
            return self._fail(ctx, self._no_key)
        credential = self._keys.get(key)
        if credential is None:
            return self._fail(ctx, self._unauthorized)
        ttl = credential.get("ttl")
        if ttl is not None and time.time() >= int(credential["created_at"]) + ttl:
            return self._fail(ctx, self._unauthorized)
        consumer_id = str((credential.get("consumer") or {}).get("id"))
        consumer = self._consumers.get(consumer_id)
        if consumer is None:
            return self._fail(ctx, self._unauthorized)

        ctx.consumer, ctx.credential, ctx.anonymous = consumer, credential, False
        rewrite = self._rewrites.get(str(credential["id"]))
        if rewrite is None:
            rewrite = authenticated(consumer, str(credential["id"]))
            self._rewrites[str(credential["id"])] = rewrite
        if ttl is None:
            self._grants[key] = (consumer, credential, rewrite)
        ctx.rewrite_upstream(rewrite)
        return None

    def _fail(
        self, ctx: RequestContext, response: LocalResponse
    ) -> LocalResponse | None:
        """Answer `response`, or let the request through as anonymous."""
        if self._anonymous is None:
            return response
        return self._anonymous.admit(ctx)


def _repeated(ctx: RequestContext, lowered: bytes) -> bool:
    """Tell whether the client sent the header `lowered` more than once."""
    request = ctx.request
    if request is None:
        return False
    seen = 0
    for name, _, _ in request.headers:
        if name == lowered:
            seen += 1
    return seen > 1


def _parse(content_type: str, reading: asyncio.Future[bytes | None]) -> Body:
    """Return the arguments of a body read; none if it could not be held."""
    return arguments.parse_body(content_type, reading.result())
