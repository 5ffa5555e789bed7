"""Run the basic-auth plugin the way Kong does.

The credentials come from `Proxy-Authorization`, else `Authorization`
(`Basic <base64 of username:password>`). Any failure answers 401
`{"message":"Unauthorized"}` with `WWW-Authenticate: Basic realm="<realm>"`,
unless `anonymous` names a consumer to let the request through as.

Stored passwords are slow hashes (`shared.credentials`), checked in a
worker thread. A verified result is cached under (credential id, stored
hash, keyed digest of the presented password), so a changed password or a
removed credential takes effect with the next config, while a good client
pays the hash once per node. On top of it, each compiled plugin keeps the
grants it made (see :class:`BasicAuth`), so a client that keeps sending the
same header costs one keyed digest and one dict lookup per request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)
from data_plane.plugins.identity import Anonymous, authenticated
from shared.credentials import verify_password

PRIORITY: Final = 1100
GRANTS: Final = 10_000  # grants a config keeps, per hide_credentials setting

_SCHEME: Final = re.compile(r"\s*[Bb]asic\s*(.+)")


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


VERIFIED: Final = VerifiedCache()

# Keys the digests of Authorization values that this node's grants are filed
# under; random per process, like VerifiedCache's.
_GRANT_KEY: Final = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=16)


def _digest(value: str) -> bytes:
    """Return the keyed digest of a header value (latin-1, as parsed)."""
    keyed = _GRANT_KEY.copy()
    keyed.update(value.encode("latin-1"))
    return keyed.digest()


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


@dataclass(frozen=True, slots=True)
class _Grant:
    """What a verified credential lets through: who it is, what to send."""

    consumer: Mapping[str, Any]
    credential: Mapping[str, Any]
    rewrite: HeaderRewrite


class BasicAuth:
    """One basic-auth plugin entity, compiled.

    A request that carries only `Authorization` is looked up first in the
    grants of the config: a keyed digest of the header value mapped to the
    consumer and the upstream headers, encoded once. A new config builds new
    plugins and tables, so grants never outlive the credentials they were
    made from; a miss takes the full path (decode, find, verify) and fills
    the table.
    The digest key is secret and random per process: the table holds no
    password and nothing a password could be guessed from offline.
    """

    name = "basic-auth"
    priority = PRIORITY

    def __init__(
        self, config: Mapping[str, Any], index: ConfigIndex, *, grants: int = GRANTS
    ) -> None:
        # Built now, with the config, rather than by the first request.
        self._credentials = index.basicauth_credentials
        self._consumers = index.consumers
        self._hide = bool(config.get("hide_credentials"))
        anonymous = config.get("anonymous")
        self._anonymous = (
            Anonymous(str(anonymous), self._consumers) if anonymous else None
        )
        realm = config.get("realm") or "service"
        self._unauthorized = LocalResponse.message(
            401, "Unauthorized", (("WWW-Authenticate", f'Basic realm="{realm}"'),)
        )
        # Shared by the config's basic-auth plugins that hide (or keep) the
        # credentials alike, so that a client of many routes is granted once.
        kind = "hidden" if self._hide else "kept"
        # Keyed digest of an Authorization value -> its grant; bounded.
        self._grants: dict[bytes, _Grant] = index.table(f"basic-auth grants {kind}")
        self._grants_limit = grants
        # (credential id, header used) -> the upstream headers of that grant.
        self._rewrites: dict[tuple[str, str], HeaderRewrite] = index.table(
            f"basic-auth rewrites {kind}"
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Authenticate the request or answer 401."""
        if self._anonymous and ctx.credential is not None and not ctx.anonymous:
            return None  # another auth plugin already identified the client
        headers = ctx.headers
        if "proxy-authorization" not in headers:
            value = headers.get("authorization")
            if value is None:
                return self._fall_back(ctx)
            digest = _digest(value)
            grant = self._grants.get(digest)
            if grant is not None:
                ctx.consumer, ctx.credential = grant.consumer, grant.credential
                ctx.anonymous = False
                ctx.rewrite_upstream(grant.rewrite)
                return None
            return self._authenticate(ctx, digest)
        return self._authenticate(ctx, None)

    def _authenticate(
        self, ctx: RequestContext, digest: bytes | None
    ) -> LocalResponse | Deferred | None:
        """Decode, find and verify the credentials (cached across configs).

        `digest` keys the grant to remember when the request carries
        Authorization alone; None when Proxy-Authorization is present too.
        """
        found = self._find(ctx)
        if found is None:
            return self._fall_back(ctx)
        credential, password, used = found
        verified = VERIFIED.verify(credential, password)
        if isinstance(verified, bool):
            return self._conclude(ctx, verified, credential, used, digest)

        deferred: Deferred = asyncio.get_running_loop().create_future()

        def conclude(done: asyncio.Future[bool]) -> None:
            if deferred.done():
                return
            if done.cancelled() or done.exception() is not None:
                deferred.set_result(self._unauthorized)
            else:
                deferred.set_result(
                    self._conclude(ctx, done.result(), credential, used, digest)
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
            credential = self._credentials.get(pair[0])
            if credential is not None:
                return credential, pair[1], header
        return None

    def _conclude(
        self,
        ctx: RequestContext,
        verified: bool,
        credential: Mapping[str, Any],
        used: str,
        digest: bytes | None,
    ) -> LocalResponse | None:
        """Let the consumer through after a check, or fall back."""
        consumer_ref = credential.get("consumer") or {}
        consumer = self._consumers.get(str(consumer_ref.get("id")))
        if not verified or consumer is None:
            return self._fall_back(ctx)

        ctx.consumer, ctx.credential, ctx.anonymous = consumer, credential, False
        rewrite = self._rewrite(consumer, credential, used)
        ctx.rewrite_upstream(rewrite)
        if digest is not None and used == "Authorization" and _canonical(ctx):
            grants = self._grants
            if len(grants) >= self._grants_limit:
                del grants[next(iter(grants))]
            grants[digest] = _Grant(consumer, credential, rewrite)
        return None

    def _rewrite(
        self, consumer: Mapping[str, Any], credential: Mapping[str, Any], used: str
    ) -> HeaderRewrite:
        """Return the upstream headers of a verified credential, built once."""
        key = (str(credential["id"]), used)
        rewrite = self._rewrites.get(key)
        if rewrite is None:
            rewrite = authenticated(consumer, str(credential["username"]))
            if self._hide:
                rewrite = rewrite.then(HeaderRewrite.of([(used, None)]))
            self._rewrites[key] = rewrite
        return rewrite

    def _fall_back(self, ctx: RequestContext) -> LocalResponse | None:
        """Answer 401, or let the request through as the anonymous consumer."""
        if self._anonymous is None:
            return self._unauthorized
        return self._anonymous.admit(ctx)


def _canonical(ctx: RequestContext) -> bool:
    """Tell whether Authorization reads `Basic <base64>` exactly as encoded.

    Only such a value is granted again from the table: a client could
    otherwise fill it with spellings of one credential (spaces, case).
    """
    value = ctx.headers.get("authorization", "")
    pair = _credentials(value)
    if pair is None:
        return False
    encoded = base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()
    return value == "Basic " + encoded
