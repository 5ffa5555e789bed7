"""Run the basic-auth plugin the way Kong does.

The credentials come from `Proxy-Authorization`, else `Authorization`
(`Basic <base64 of username:password>`). Any failure answers 401
`{"message":"Unauthorized"}` with `WWW-Authenticate: Basic realm="<realm>"`,
unless `anonymous` names a consumer to let the request through as.

Stored passwords are slow hashes (`shared.credentials`); a verified result
is cached under (credential id, stored hash, keyed digest of the presented
password), so a changed password or a removed credential takes effect with
the next config, while a good client pays the hash once per node.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from data_plane.plugins.base import ConfigIndex, LocalResponse, RequestContext
from shared.credentials import verify_password

PRIORITY = 1100

_SCHEME = re.compile(r"\s*[Bb]asic\s*(.+)")
_PAIR = re.compile(r"([^:]+):(.*)", re.DOTALL)


class VerifiedCache:
    """Remember verification results; bounded, oldest entries dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._results: dict[tuple[str, str, bytes], bool] = {}
        # A per-process key, so the cache holds no plain digests of passwords.
        self._key = secrets.token_bytes(32)

    def verify(self, credential: Mapping[str, Any], password: str) -> bool:
        """Tell whether `password` matches the credential's stored hash."""
        stored = str(credential.get("password") or "")
        presented = hashlib.blake2b(
            password.encode("utf-8"), key=self._key, digest_size=32
        ).digest()
        key = (str(credential["id"]), stored, presented)
        result = self._results.get(key)
        if result is None:
            result = verify_password(password, stored)
            if len(self._results) >= self._size:
                del self._results[next(iter(self._results))]
            self._results[key] = result
        return result


VERIFIED = VerifiedCache()


def _credentials(header: str) -> tuple[str, str] | None:
    """Decode `Basic <b64>` into (username, password), or None."""
    scheme = _SCHEME.match(header)
    if scheme is None:
        return None
    try:
        decoded = base64.b64decode(scheme.group(1).strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    pair = _PAIR.fullmatch(decoded.decode("utf-8", "replace"))
    if pair is None:
        return None
    return pair.group(1), pair.group(2)


class BasicAuth:
    """One basic-auth plugin entity, compiled."""

    name = "basic-auth"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._index = index
        self._hide = bool(config.get("hide_credentials"))
        self._anonymous = config.get("anonymous") or None
        realm = config.get("realm") or "service"
        self._unauthorized = LocalResponse.message(
            401, "Unauthorized", (("WWW-Authenticate", f'Basic realm="{realm}"'),)
        )

    def access(self, ctx: RequestContext) -> LocalResponse | None:
        """Authenticate the request or answer 401."""
        if self._anonymous and ctx.credential is not None and not ctx.anonymous:
            return None  # another auth plugin already identified the client
        consumer, credential, used = self._identify(ctx)
        if consumer is None or credential is None:
            return self._fall_back(ctx)

        if self._hide:
            ctx.set_upstream_header(used, None)
        ctx.consumer, ctx.credential, ctx.anonymous = consumer, credential, False
        _set_consumer_headers(ctx, consumer)
        ctx.set_upstream_header("X-Credential-Identifier", str(credential["username"]))
        ctx.set_upstream_header("X-Anonymous-Consumer", None)
        return None

    def _identify(
        self, ctx: RequestContext
    ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None, str]:
        """Return (consumer, credential, header used) for valid credentials."""
        for header in ("Proxy-Authorization", "Authorization"):
            value = ctx.headers.get(header.lower())
            if value is None:
                continue
            pair = _credentials(value)
            if pair is None:
                continue
            credential = self._index.basicauth_credential(pair[0])
            if credential is None or not VERIFIED.verify(credential, pair[1]):
                continue
            consumer_ref = credential.get("consumer") or {}
            consumer = self._index.consumer(str(consumer_ref.get("id")))
            return consumer, credential, header
        return None, None, ""

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
        _set_consumer_headers(ctx, consumer)
        ctx.set_upstream_header("X-Credential-Identifier", None)
        ctx.set_upstream_header("X-Anonymous-Consumer", "true")
        return None


def _set_consumer_headers(ctx: RequestContext, consumer: Mapping[str, Any]) -> None:
    """Tell the upstream who the consumer is; absent values are removed."""
    for name, field in (
        ("X-Consumer-ID", "id"),
        ("X-Consumer-Custom-ID", "custom_id"),
        ("X-Consumer-Username", "username"),
    ):
        value = consumer.get(field)
        ctx.set_upstream_header(name, str(value) if value is not None else None)
