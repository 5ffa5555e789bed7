"""Run the cors plugin the way Kong does.

A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is
answered 200 here with the allowed origin, methods, headers and max age,
unless `preflight_continue` passes it to the upstream untouched. Any other
response, the upstream's or one a later plugin answers, gets the allowed
origin, the credentials flag and the exposed headers.

Origins: none or `*` allow any (`Access-Control-Allow-Origin: *`); an
entry with characters beyond letters, digits and `.:/-` is a regex,
anchored at both ends as Kong anchors it; any other entry is an origin,
compared after its default port is dropped. An origin that matches none
gets no `Access-Control-Allow-Origin`, even one the upstream sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)

PRIORITY: Final = 2000
ALL_METHODS: Final = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
_MAYBE_REGEX: Final = re.compile(r"[^A-Za-z0-9.:/-]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_CACHED: Final = 1024  # origins whose verdict a plugin remembers

_ALLOW_ORIGIN: Final = "Access-Control-Allow-Origin"
_VARY: Final = HeaderRewrite.adding((("Vary", "Origin"),))
_CLEAR_ORIGIN: Final = HeaderRewrite.of(((_ALLOW_ORIGIN, None),))
_ANY_ORIGIN: Final = HeaderRewrite.of(((_ALLOW_ORIGIN, "*"),))
_CREDENTIALS: Final = HeaderRewrite.of((("Access-Control-Allow-Credentials", "true"),))


def normalize_origin(origin: str) -> str:
    """Return `scheme://host[:port]` of an origin, without a default port."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return origin
    if not parts.hostname:
        return origin
    if port is not None and _DEFAULT_PORTS.get(parts.scheme) == port:
        port = None
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return scheme + parts.hostname + (f":{port}" if port is not None else "")


def _number(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Cors:
    """One cors plugin entity, compiled."""

    name = "cors"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        origins = [str(o) for o in config.get("origins") or ()]
        self._allow_all = not origins or origins == ["*"]
        self._exact: set[str] = set()
        self._patterns: list[re.Pattern[str]] = []
        for entry in origins:
            if _MAYBE_REGEX.search(entry):
                # Kong anchors regexes that the user did not anchor.
                pattern = entry if entry.endswith("$") else entry + "$"
                self._patterns.append(re.compile(pattern.removeprefix("^")))
            else:
                self._exact.add(normalize_origin(entry))
        self._verdicts: dict[str, bool] = {}
        # The response headers depend on the origin only: encoded once each.
        self._rewrites: dict[str, HeaderRewrite] = {}
        self._credentials = bool(config.get("credentials"))
        self._continue = bool(config.get("preflight_continue"))
        self._private_network = bool(config.get("private_network"))
        self._headers = ",".join(config.get("headers") or ())
        methods = config.get("methods")
        self._methods = ",".join(methods) if methods is not None else ALL_METHODS
        max_age = config.get("max_age")
        self._max_age = _number(max_age) if max_age is not None else None
        exposed = config.get("exposed_headers")
        self._exposed = (
            HeaderRewrite.of((("Access-Control-Expose-Headers", ",".join(exposed)),))
            if exposed
            else None
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Answer a preflight here, unless it is to go upstream."""
        if ctx.method != "OPTIONS" or self._continue or not _preflight(ctx):
            return None
        headers: dict[str, str] = {}
        origin = ctx.headers.get("origin", "")
        allowed = self._origin(origin)
        if not self._allow_all:
            headers["Vary"] = "Origin"
        if allowed is not None:
            headers[_ALLOW_ORIGIN] = allowed
        if self._credentials and (allowed != "*" or origin):
            if allowed == "*":
                headers["Vary"] = "Origin"
                headers[_ALLOW_ORIGIN] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        requested = ctx.headers.get("access-control-request-headers")
        if self._headers:
            headers["Access-Control-Allow-Headers"] = self._headers
        elif requested:
            headers["Access-Control-Allow-Headers"] = requested
        headers["Access-Control-Allow-Methods"] = self._methods
        if self._max_age is not None:
            headers["Access-Control-Max-Age"] = self._max_age
        if (
            self._private_network
            and ctx.headers.get("access-control-request-private-network") == "true"
        ):
            headers["Access-Control-Allow-Private-Network"] = "true"
        return LocalResponse(200, b"", tuple(headers.items()), content_type="")

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Add the allowed origin, credentials and exposed headers."""
        if ctx.method == "OPTIONS" and _preflight(ctx):
            return None  # answered here with its headers, or left upstream
        origin = ctx.headers.get("origin", "")
        rewrite = self._rewrites.get(origin)
        if rewrite is None:
            rewrite = self._rewrite(origin)
            if len(self._rewrites) >= _CACHED:
                self._rewrites.clear()
            self._rewrites[origin] = rewrite
        return rewrite

    def _rewrite(self, origin: str) -> HeaderRewrite:
        """Return the response headers for a request from `origin`."""
        if self._allow_all:
            rewrite = _ANY_ORIGIN
            if self._credentials and origin:
                rewrite = _VARY.then(
                    HeaderRewrite.of(
                        (
                            (_ALLOW_ORIGIN, origin),
                            ("Access-Control-Allow-Credentials", "true"),
                        )
                    )
                )
        else:
            allowed = self._origin(origin)
            rewrite = _VARY.then(
                _CLEAR_ORIGIN
                if allowed is None
                else HeaderRewrite.of(((_ALLOW_ORIGIN, allowed),))
            )
            if self._credentials:
                rewrite = rewrite.then(_CREDENTIALS)
        if self._exposed is not None:
            rewrite = rewrite.then(self._exposed)
        return rewrite

    def _origin(self, origin: str) -> str | None:
        """Return the Access-Control-Allow-Origin for `origin` (None: none)."""
        if self._allow_all:
            return "*"
        if not origin:
            return None
        verdict = self._verdicts.get(origin)
        if verdict is None:
            normalized = normalize_origin(origin)
            verdict = normalized in self._exact or any(
                pattern.match(normalized) for pattern in self._patterns
            )
            if len(self._verdicts) >= _CACHED:
                self._verdicts.clear()
            self._verdicts[origin] = verdict
        return origin if verdict else None


def _preflight(ctx: RequestContext) -> bool:
    """Tell whether the request is a CORS preflight."""
    headers = ctx.headers
    return (
        ctx.method == "OPTIONS"
        and bool(headers.get("origin"))
        and bool(headers.get("access-control-request-method"))
    )
