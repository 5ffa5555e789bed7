"""Run the request-transformer plugin the way Kong does.

The steps, in Kong's order:

1. `replace.uri` becomes the upstream path; the query string stays.
2. `http_method` becomes the upstream method. Made GET, HEAD or TRACE, a
   request with an urlencoded body also gets the body's arguments after
   its query string's (the body itself stays).
3. Headers, 4. the body, 5. the query string, each in Kong's order:
   remove the `remove` names; rename each `rename` name that is present;
   replace each `replace` name that is present; add each `add` name that
   is absent; append every `append` value (beside those there). Header
   names compare case-insensitively, the others exactly.

Host is written by the proxy: `replace` sets the Host sent upstream, and a
header renamed to Host moves its value there; removing, adding or appending
Host changes nothing, as in Kong. A Host made empty leaves the routed one.

Body edits apply to JSON, urlencoded and multipart bodies, by their
Content-Type (:mod:`data_plane.plugins.request_edits`), and set the
Content-Length of the new body. The body is read only for a plugin that
edits bodies (or moves a form into the query string) and a request of one
of those types; a body too large to hold goes on as it came.

Values may be `$(...)` templates (:mod:`shared.templates`), parsed when the
config is compiled. They read the request as it came to the plugin: its
headers, its query arguments and the groups of the route's regex path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from data_plane.plugins import arguments
from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)
from data_plane.plugins.request_edits import (
    FORM,
    JSON,
    MULTIPART,
    Edits,
    content_kind,
    edit_args,
    edit_json,
    edit_multipart,
    merge_form,
)
from shared.errors import ValidationError
from shared.templates import Template, parse

PRIORITY: Final = 801
_PARTS = ("remove", "rename", "replace", "add", "append")
# Methods after which Kong moves an urlencoded body's arguments to the query.
_QUERY_METHODS = frozenset({"GET", "HEAD", "TRACE"})
# What a path may hold unescaped (RFC 3986 3.3), "%" included: a rendered
# path keeps the escapes it has.
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_CONTROL = str.maketrans("", "", "\r\n\0")

_Pairs = tuple[tuple[str, Template], ...]


def _template(source: str, field: str) -> Template:
    """Parse the template of a config `field`; a bad one fails the compile.

    The control plane refuses such configs: this is for a declarative one
    that was not checked.
    """
    try:
        return parse(source)
    except ValidationError as exc:
        raise ValidationError(
            f"request-transformer config.{field}: {exc.detail}"
        ) from None


def _templates(entries: Sequence[Any] | None, field: str) -> _Pairs:
    """Parse `name:value` entries; an entry without a value does nothing.

    Like Kong, the colons after the name are all separators.
    """
    found = []
    for position, entry in enumerate(entries or ()):
        name, _, value = str(entry).partition(":")
        value = value.lstrip(":")
        if value:
            found.append((name, _template(value, f"{field}[{position}]")))
    return tuple(found)


def _rendered(pairs: _Pairs, env: _Env) -> tuple[tuple[str, str], ...]:
    return tuple((name, value.render(env)) for name, value in pairs)


def _static(pairs: _Pairs) -> tuple[tuple[str, str], ...] | None:
    values = tuple((name, value.static) for name, value in pairs)
    if any(value is None for _, value in values):
        return None
    return tuple((name, value) for name, value in values if value is not None)


class _Env:
    """What a request's templates read (a :class:`shared.templates.Env`)."""

    __slots__ = ("headers", "_query", "_params", "_match", "_captures")

    def __init__(self, ctx: RequestContext) -> None:
        self.headers = ctx.headers
        self._query = ctx.query
        self._params: Mapping[str, Any] | None = None
        self._match = ctx.captures
        self._captures: dict[int | str, str | None] | None = None

    @property
    def query_params(self) -> Mapping[str, Any]:
        """Return the query arguments, parsed on first use."""
        if self._params is None:
            self._params = arguments.parse_args(self._query)
        return self._params

    @property
    def uri_captures(self) -> Mapping[int | str, str | None]:
        """Return the route's regex path groups, by number and by name."""
        if self._captures is None:
            captures: dict[int | str, str | None] = {}
            match = self._match
            if match is not None:
                for number in range(1, match.re.groups + 1):
                    captures[number] = match.group(number)
                captures.update(match.groupdict())
            self._captures = captures
        return self._captures


class _Part:
    """The edits of one part (headers, query string or body), compiled."""

    __slots__ = ("remove", "rename", "replace", "add", "append", "static", "any")

    def __init__(self, sections: Mapping[str, Mapping[str, Any]], key: str) -> None:
        self.remove = tuple(str(n) for n in sections["remove"].get(key) or ())
        self.rename = _templates(sections["rename"].get(key), f"rename.{key}")
        self.replace = _templates(sections["replace"].get(key), f"replace.{key}")
        self.add = _templates(sections["add"].get(key), f"add.{key}")
        self.append = _templates(sections["append"].get(key), f"append.{key}")
        # The edits themselves when no value is a template: made once.
        self.static: Edits | None = None
        rename, replace = _static(self.rename), _static(self.replace)
        add, append = _static(self.add), _static(self.append)
        if rename is not None and replace is not None:
            if add is not None and append is not None:
                self.static = Edits(self.remove, rename, replace, add, append)
        self.any = bool(self.remove or self.rename or self.replace or self.add) or bool(
            self.append
        )

    def edits(self, env: _Env | None) -> Edits:
        """Return the edits for a request, their values rendered."""
        if self.static is not None:
            return self.static
        assert env is not None, "templates rendered without a request"
        return Edits(
            self.remove,
            _rendered(self.rename, env),
            _rendered(self.replace, env),
            _rendered(self.add, env),
            _rendered(self.append, env),
        )


class _HeaderEdits:
    """Header edits with their names lowercased for Kong's comparisons."""

    __slots__ = ("rename", "replace", "add", "appended")

    def __init__(self, edits: Edits) -> None:
        self.rename = [(old.lower(), old, new) for old, new in edits.rename]
        self.replace = [(name.lower(), name, value) for name, value in edits.replace]
        self.add = [
            (lowered, name, value)
            for name, value in edits.add
            if (lowered := name.lower()) != "host"
        ]
        self.appended = HeaderRewrite.adding(
            [(name, value) for name, value in edits.append if name.lower() != "host"]
        )


class RequestTransformer:
    """One request-transformer plugin entity, compiled."""

    name = "request-transformer"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        sections = {part: config.get(part) or {} for part in _PARTS}
        self._header_part = _Part(sections, "headers")
        self._query = _Part(sections, "querystring")
        self._body = _Part(sections, "body")
        self._has_headers = self._header_part.any
        self._has_query = self._query.any
        self._has_body = self._body.any

        # Host is the proxy's to write: removing it does nothing.
        removed = [n for n in self._header_part.remove if n.lower() != "host"]
        self._header_removal = HeaderRewrite.of([(name, None) for name in removed])
        self._removed = frozenset(name.lower() for name in removed)
        static = self._header_part.static
        self._headers = _HeaderEdits(static) if static is not None else None

        uri = sections["replace"].get("uri")
        self._uri = _template(str(uri), "replace.uri") if uri else None
        self._path: str | None = None  # the encoded path, when it is static
        if self._uri is not None and self._uri.static is not None:
            self._path = quote(self._uri.static, safe=_PATH_SAFE)

        method = config.get("http_method")
        self._method = str(method).upper() if method else None
        self._merges = self._method in _QUERY_METHODS

        parts = (self._header_part, self._query, self._body)
        self._templated = any(part.static is None for part in parts) or (
            self._uri is not None and self._uri.static is None
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Change what goes upstream; wait for the body if it is edited."""
        env = _Env(ctx) if self._templated else None
        if self._uri is not None:
            self._change_path(ctx, env)
        if self._method is not None:
            ctx.set_upstream_method(self._method)
        if self._has_headers:
            self._change_headers(ctx, env)

        if self._has_body or self._merges:
            kind = content_kind(ctx.headers.get("content-type", ""))
            if kind is not None and (self._has_body or kind == FORM):
                request = ctx.request
                if request is not None:
                    return self._read_body(ctx, env, kind, request.read_body())
        self._change_query(ctx, env)
        return None

    def _change_path(self, ctx: RequestContext, env: _Env | None) -> None:
        """Send the request to `replace.uri`, rendered."""
        path = self._path
        if path is None:
            assert self._uri is not None and env is not None, "no path template"
            rendered = self._uri.render(env)
            # Kong fails the request on a path without its leading "/";
            # the routed path goes on instead.
            if not rendered.startswith("/"):
                return
            path = quote(rendered, safe=_PATH_SAFE)
        ctx.set_upstream_path(path)

    def _change_headers(self, ctx: RequestContext, env: _Env | None) -> None:
        """Change the headers sent upstream, and the Host, in Kong's order."""
        edits = self._headers
        if edits is None:
            edits = _HeaderEdits(self._header_part.edits(env))
        given = ctx.headers
        removed = self._removed
        values = {k: v for k, v in given.items() if k not in removed and k != "host"}
        host: str | None = None
        changes: list[tuple[str, str | None]] = []
        for lowered, old, new in edits.rename:
            value = values.pop(lowered, None)
            if value is None:
                continue
            changes.append((old, None))
            if new.lower() == "host":
                host = value
            else:
                changes.append((new, value))
                values[new.lower()] = value
        for lowered, name, value in edits.replace:
            if lowered == "host":
                host = value  # Kong sets it whether or not it was sent
            elif lowered in values:
                changes.append((name, value))
                values[lowered] = value
        for lowered, name, value in edits.add:
            if lowered not in values:
                changes.append((name, value))
                values[lowered] = value
        rewrite = self._header_removal.then(HeaderRewrite.of(changes))
        ctx.rewrite_upstream(rewrite.then(edits.appended))
        if host:
            ctx.set_upstream_host(host.translate(_CONTROL))

    def _read_body(
        self,
        ctx: RequestContext,
        env: _Env | None,
        kind: str,
        reading: asyncio.Future[bytes | None],
    ) -> Deferred | None:
        """Edit the body and the query string once the body is read."""
        if reading.done():
            self._change_body(ctx, env, kind, reading.result())
            return None

        deferred: Deferred = asyncio.get_running_loop().create_future()

        def resume(done: asyncio.Future[bytes | None]) -> None:
            if deferred.done():
                return
            try:
                body = None if done.cancelled() else done.result()
                self._change_body(ctx, env, kind, body)
            except Exception as exc:  # handed to the exchange, which logs it
                deferred.set_exception(exc)
                return
            deferred.set_result(None)

        reading.add_done_callback(resume)
        return deferred

    def _change_body(
        self, ctx: RequestContext, env: _Env | None, kind: str, body: bytes | None
    ) -> None:
        """Apply the method's query rule and the body edits, then the query's.

        `body` is None when it was too large to hold: it goes on as it came.
        """
        request = ctx.request
        if body is not None and request is not None:
            if self._merges and kind == FORM:
                merged = merge_form(ctx.query, body)
                if merged is not None:
                    ctx.query = merged
            if self._has_body:
                edits = self._body.edits(env)
                if kind == JSON:
                    changed = edit_json(body, edits)
                elif kind == MULTIPART:
                    content_type = ctx.headers.get("content-type", "")
                    changed = edit_multipart(body, content_type, edits)
                else:
                    changed = edit_args(body, edits)
                if changed is not None:
                    request.replace_body(changed)
        self._change_query(ctx, env)

    def _change_query(self, ctx: RequestContext, env: _Env | None) -> None:
        """Change the query string sent upstream."""
        if self._has_query:
            query = edit_args(ctx.query, self._query.edits(env))
            if query is not None:
                ctx.query = query
