"""Run the basic-auth plugin the way Kong does.

The credentials come from `Proxy-Authorization`, else `Authorization`
(`Basic <base64 of username:password>`). Any failure answers 401
`{"message":"Unauthorized"}` with `WWW-Authenticate: Basic realm="<realm>"`,
unless `anonymous` names a consumer to let the request through as.

Stored passwords are slow hashes (`shared.credentials`), checked in a
worker thread. A verified result is cached under (credential id, stored
hash, keyed digest of the presented password), so a changed password or a
removed credential takes effect with the next config, while a good client
pays the hash once per node.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from functools import partial
from typing import Any

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    LocalResponse,
    RequestContext,
)
from shared.credentials import verify_password

PRIORITY = 1100

_SCHEME = re.compile(r"\s*[Bb]asic\s*(.+)")


class VerifiedCache:
    """Remember verification results; bounded, oldest entries dropped first.

    A miss is checked in a worker thread (the hash takes milliseconds, and
    the event loop must keep serving); concurrent checks of the same
    password share one computation.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._results: dict[tuple[str, str, bytes], bool] = {}
        self._running: dict[tuple[str, str, bytes], asyncio.Future[bool]] = {}
        # A per-process key, so the cache holds no plain digests of passwords.
        self._key = secrets.token_bytes(32)

    def _cache_key(
        self, credential: Mapping[str, Any], password: str
    ) -> tuple[str, str, bytes]:
        presented = hashlib.blake2b(
            password.encode("utf-8"), key=self._key, digest_size=32
        ).digest()
        return str(credential["id"]), str(credential.get("password") or ""), presented

    def verify(
        self, credential: Mapping[str, Any], password: str
    ) -> bool | asyncio.Future[bool]:
        """Tell whether `password` matches the credential's stored hash.

        Returns the answer when it is cached, else a future of it.
        """
        key = self._cache_key(credential, password)
        result = self._results.get(key)
        if result is not None:
            return result
        running = self._running.get(key)
        if running is None:
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(None, verify_password, password, key[1])
            self._running[key] = running
            running.add_done_callback(partial(self._store, key))
        return running

    def _store(self, key: tuple[str, str, bytes], done: asyncio.Future[bool]) -> None:
        del self._running[key]
        if done.cancelled() or done.exception() is not None:
            return
        if len(self._results) >= self._size:
            del self._results[next(iter(self._results))]
        self._results[key] = done.result()


VERIFIED = VerifiedCache()


def _credentials(header: str) -> tuple[str, str] | None:
    """Decode `Basic <b64>` into (username, password), or None."""
    if header[:6] in ("Basic ", "basic "):
        encoded = header[6:].strip()
    else:
        scheme = _SCHEME.match(header)
        if scheme is None:
            return None
        encoded = scheme.group(1).strip()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    if not username or not colon:
        return None
    return username, password


class BasicAuth:
    """One basic-auth plugin entity, compiled."""

    name = "basic-auth"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._index = index
        self._hide = bool(config.get("hide_credentials"))
        self._anonymous = config.get("anonymous") or None
        realm = config.get("realm") or "service"
        # Credential id -> upstream headers, built on first use in this config.
        self._granted: dict[str, dict[str, tuple[str, str | None]]] = {}
        self._unauthorized = LocalResponse.message(
            401, "Unauthorized", (("WWW-Authenticate", f'Basic realm="{realm}"'),)
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Authenticate the request or answer 401."""
        if self._anonymous and ctx.credential is not None and not ctx.anonymous:
            return None  # another auth plugin already identified the client
        found = self._find(ctx)
        if found is None:
            return self._fall_back(ctx)
        credential, password, used = found
        verified = VERIFIED.verify(credential, password)
        if isinstance(verified, bool):
            return self._conclude(ctx, verified, credential, used)

        deferred: Deferred = asyncio.get_running_loop().create_future()

        def conclude(done: asyncio.Future[bool]) -> None:
            if deferred.done():
                return
            if done.cancelled() or done.exception() is not None:
                deferred.set_result(self._unauthorized)
            else:
                deferred.set_result(
                    self._conclude(ctx, done.result(), credential, used)
                )

        verified.add_done_callback(conclude)
        return deferred

    def _find(self, ctx: RequestContext) -> tuple[Mapping[str, Any], str, str] | None:
        """Return (credential, presented password, header) to check, if any.

        As in Kong, Proxy-Authorization is used when it names a known
        username; otherwise Authorization is.
        """
        for header in ("Proxy-Authorization", "Authorization"):
            value = ctx.headers.get(header.lower())
            if value is None:
                continue
            pair = _credentials(value)
            if pair is None:
                continue
            credential = self._index.basicauth_credential(pair[0])
            if credential is not None:
                return credential, pair[1], header
        return None

    def _conclude(
        self,
        ctx: RequestContext,
        verified: bool,
        credential: Mapping[str, Any],
        used: str,
    ) -> LocalResponse | None:
        """Let the consumer through after a check, or fall back."""
        consumer_ref = credential.get("consumer") or {}
        consumer = self._index.consumer(str(consumer_ref.get("id")))
        if not verified or consumer is None:
            return self._fall_back(ctx)

        ctx.consumer, ctx.credential, ctx.anonymous = consumer, credential, False
        granted = self._granted.get(credential["id"])
        if granted is None:
            granted = _consumer_headers(consumer)
            granted["x-credential-identifier"] = (
                "X-Credential-Identifier",
                str(credential["username"]),
            )
            granted["x-anonymous-consumer"] = ("X-Anonymous-Consumer", None)
            self._granted[credential["id"]] = granted
        ctx.upstream_headers.update(granted)
        if self._hide:
            ctx.set_upstream_header(used, None)
        return None

    def _fall_back(self, ctx: RequestContext) -> LocalResponse | None:
        """Answer 401, or let the request through as the anonymous consumer."""
        if not self._anonymous:
            return self._unauthorized
        consumer = self._index.consumer(str(self._anonymous))
        if consumer is None:
            return LocalResponse.message(
                500,
                f"anonymous consumer {self._anonymous} is configured but doesn't exist",
            )
        ctx.consumer, ctx.credential, ctx.anonymous = consumer, None, True
        ctx.upstream_headers.update(_consumer_headers(consumer))
        ctx.set_upstream_header("X-Credential-Identifier", None)
        ctx.set_upstream_header("X-Anonymous-Consumer", "true")
        return None


def _consumer_headers(consumer: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Return the headers telling the upstream who the consumer is.

    Absent values remove the header, so a client cannot pose as a consumer.
    """
    headers: dict[str, tuple[str, str | None]] = {}
    for name, field in (
        ("X-Consumer-ID", "id"),
        ("X-Consumer-Custom-ID", "custom_id"),
        ("X-Consumer-Username", "username"),
    ):
        value = consumer.get(field)
        headers[name.lower()] = (name, str(value) if value is not None else None)
    return headers
