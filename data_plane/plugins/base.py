"""Define what a plugin runtime is and what it sees of a request.

A plugin is built once per config from its entity (`build(config, index)`),
then its `access(ctx)` runs for every request of the routes it applies to,
in Kong's order (higher PRIORITY first, ties by name in reverse). `access`
either returns a :class:`LocalResponse`, which ends the request, or None and
may record upstream header rewrites (a :class:`HeaderRewrite`, encoded ahead
of time), another upstream method, path or Host (a :class:`Retarget`) and
the authenticated consumer in `ctx`; a plugin that has to wait
returns a :data:`Deferred` of either. A plugin may also have a response
phase (:class:`ResponsePlugin`), a body phase on top of it
(:class:`BodyPlugin`) and a log phase (:class:`LogPlugin`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

JSON: Final = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class LocalResponse:
    """A response Portico produces itself instead of asking the upstream."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON  # "": no Content-Type header

    @classmethod
    def message(
        cls, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> LocalResponse:
        """Return Kong's `{"message": ...}` error response."""
        return cls(status, orjson.dumps({"message": message}), headers)


_CONTROL: Final = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


class HeaderRewrite:
    """Changes to a header block, encoded once and then shared.

    The headers named in `names` (lowercase bytes) are left out of the
    block as it came and `block` (ready-made header lines) is added;
    `written` names the lines of `block`. Plugins build their rewrites when
    a config is compiled or on the first request that needs one, so a
    request only picks a rewrite and never encodes headers. A rewrite is
    never changed once made. It is a plain class, not a dataclass: some
    plugins create one per request, and a dataclass's generated
    `__init__` stays interpreted when the module is compiled.
    """

    __slots__ = ("names", "block", "written")

    def __init__(
        self,
        names: frozenset[bytes] = frozenset(),
        block: bytes = b"",
        written: frozenset[bytes] = frozenset(),
    ) -> None:
        self.names = names
        self.block = block
        self.written = written

    def __repr__(self) -> str:
        return f"HeaderRewrite({self.names!r}, {self.block!r}, {self.written!r})"

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str | None]]) -> HeaderRewrite:
        """Return the rewrite setting each `(name, value)`; None removes it."""
        names: set[bytes] = set()
        lines: dict[bytes, bytes] = {}  # in order; a later name replaces
        for name, value in headers:
            lowered = name.lower().encode("ascii")
            names.add(lowered)
            lines.pop(lowered, None)
            if value is not None:
                # CR, LF and NUL would let a value start a header of its own.
                clean = value.translate(_CONTROL)
                lines[lowered] = f"{name}: {clean}\r\n".encode()
        if not names:
            return NO_REWRITE
        return cls(frozenset(names), b"".join(lines.values()), frozenset(lines))

    @classmethod
    def adding(cls, headers: Iterable[tuple[str, str]]) -> HeaderRewrite:
        """Return the rewrite adding each `(name, value)`, replacing none."""
        pairs = [(name, value.translate(_CONTROL)) for name, value in headers]
        return cls(
            frozenset(),
            "".join(f"{name}: {value}\r\n" for name, value in pairs).encode(),
            frozenset(name.lower().encode("ascii") for name, _ in pairs),
        )

    def then(self, other: HeaderRewrite) -> HeaderRewrite:
        """Return this rewrite followed by `other`, which wins on a name."""
        if not other.names and not other.block:
            return self
        if not self.names and not self.block:
            return other
        if other.names.isdisjoint(self.written):
            # The common case (plugins setting different headers): no line
            # of this rewrite is replaced, so the blocks simply follow.
            return HeaderRewrite(
                self.names | other.names,
                self.block + other.block,
                self.written | other.written,
            )
        kept = b"".join(
            [
                line + b"\r\n"
                for line in self.block.split(b"\r\n")[:-1]
                if line.partition(b":")[0].lower() not in other.names
            ]
        )
        return HeaderRewrite(
            self.names | other.names,
            kept + other.block,
            (self.written - other.names) | other.written,
        )


NO_REWRITE: Final = HeaderRewrite()


@dataclass(slots=True)
class Retarget:
    """What plugins send upstream instead of the routed method, path, Host.

    None leaves each as routed. A HEAD request stays HEAD upstream: its
    response has no body for the client, whatever the upstream's method.
    """

    method: str | None = None
    path: str | None = None  # percent-encoded, without the query string
    host: str | None = None  # the Host header's value


class RequestContext:
    """What plugins read and write while a request is in the access phase."""

    __slots__ = (
        "method",
        "path",
        "headers",
        "client_ip",
        "rewrite",
        "consumer",
        "credential",
        "anonymous",
        "query",
        "request",
        "route_id",
        "downstream",
        "captures",
        "retarget",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        client_ip: str,
        query: bytes = b"",
        request: Request | None = None,
        route_id: str = "",
        captures: re.Match[str] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # lowercase names; the last value of a repeat
        self.client_ip = client_ip
        self.query = query  # as received, without "?"; what goes upstream
        self.request = request  # the raw headers and the body, when needed
        self.route_id = route_id
        self.rewrite = NO_REWRITE  # what the upstream receives instead
        self.consumer: Mapping[str, Any] | None = None
        self.credential: Mapping[str, Any] | None = None
        self.anonymous = False
        # Headers for the client's response, chosen in the access phase
        # (Kong's kong.response.set_header there); plugins with a
        # `header_filter` add theirs when the response head is known.
        self.downstream = NO_REWRITE
        # The match of the route's regex path, for its groups; None for a
        # route matched otherwise.
        self.captures = captures
        self.retarget: Retarget | None = None  # see set_upstream_method

    def rewrite_downstream(self, rewrite: HeaderRewrite) -> None:
        """Apply `rewrite` to the response after the ones chosen before."""
        self.downstream = self.downstream.then(rewrite)

    def rewrite_upstream(self, rewrite: HeaderRewrite) -> None:
        """Apply `rewrite` after the ones plugins chose before."""
        self.rewrite = self.rewrite.then(rewrite)

    def set_upstream_header(self, name: str, value: str | None) -> None:
        """Send `name: value` upstream instead of the client's, or drop it."""
        self.rewrite = self.rewrite.then(HeaderRewrite.of(((name, value),)))

    def set_upstream_method(self, method: str) -> None:
        """Send the request upstream with `method` instead of the client's."""
        self._retarget().method = method

    def set_upstream_path(self, path: str) -> None:
        """Send the request upstream to `path` (encoded, without a query)."""
        self._retarget().path = path

    def set_upstream_host(self, host: str) -> None:
        """Send `host` upstream as the Host header, instead of the routed one."""
        self._retarget().host = host

    def _retarget(self) -> Retarget:
        retarget = self.retarget
        if retarget is None:
            retarget = self.retarget = Retarget()
        return retarget


# A plugin that must wait (for a password check in a worker thread) returns
# a future of its answer; the request resumes when it is done.
Deferred = asyncio.Future[LocalResponse | None]


class Request(Protocol):
    """What a plugin may ask of the request beyond its context.

    The body streams: it is buffered only for a plugin that reads it.
    """

    # (lowercase name, name, value) as received, repeats included.
    headers: list[tuple[bytes, bytes, bytes]]

    def read_body(self) -> asyncio.Future[bytes | None]:
        """Return the whole body once received; None when too large to hold."""
        ...

    def replace_body(self, body: bytes) -> None:
        """Send `body` upstream instead of the one read with `read_body`."""
        ...

    def limit_body(self, limit: int, response: LocalResponse) -> bool:
        """Answer `response` once more than `limit` body bytes came.

        Returns True when the body received so far is over it already.
        """
        ...


class Plugin(Protocol):
    """A plugin instance compiled from one plugin entity."""

    name: str
    priority: int

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Inspect the request; return a response to end it here."""
        ...


class ResponsePlugin(Plugin, Protocol):
    """A plugin that also changes the response head sent to the client.

    `header_filter` runs once the head is known: the upstream's, or the one
    of a response Portico answers itself, even when a plugin answered
    before this one's access ran (Kong runs the header filter of every
    plugin of the route).
    `headers` holds the head's header lines, four pieces each (name, ": ",
    value, CRLF), as received; what it returns is applied to them.
    """

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Return the changes to the response headers, or None for none."""
        ...


class BodyPlugin(ResponsePlugin, Protocol):
    """A plugin that also changes the response body sent to the client.

    Once every plugin's `header_filter` has run, `wants_body` tells from the
    final head (`headers` as for `header_filter`) whether this response's
    body is to be changed. If so, the exchange holds the head back, gathers
    the whole body and gives it to `body_filter`, then sends the head with
    the new body's Content-Length. A body larger than the exchange holds
    goes on unchanged, as it came. Responses without a body (to HEAD, 204,
    304) are not offered; responses Portico makes itself are, like Kong's
    `body_filter` runs on them.
    """

    def wants_body(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> bool:
        """Tell whether the body of a response with this head is to change."""
        ...

    def body_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes], body: bytes
    ) -> bytes | None:
        """Return the body to send instead of `body`; None leaves it."""
        ...


class Served:
    """What the log phase knows of an exchange once it is over.

    Latencies are in milliseconds: `request_ms` from the request's head to
    the end; `portico_ms` Portico's own share (routing and plugins up to
    sending upstream, or up to its own answer); `upstream_ms` from sending
    upstream to the upstream's response head, None when no upstream
    answered. `received` and `sent` count the request's and the response's
    head and body bytes (chunked framing left out). `labels` is the route's
    (service, route) as Kong's logs name them, None for a route without a
    service.
    """

    __slots__ = (
        "status",
        "by_upstream",
        "request_ms",
        "portico_ms",
        "upstream_ms",
        "received",
        "sent",
        "labels",
    )

    def __init__(
        self,
        status: int,
        by_upstream: bool,
        request_ms: float,
        portico_ms: float,
        upstream_ms: float | None,
        received: int,
        sent: int,
        labels: tuple[str, str] | None,
    ) -> None:
        self.status = status
        self.by_upstream = by_upstream  # False: Portico or a plugin answered
        self.request_ms = request_ms
        self.portico_ms = portico_ms
        self.upstream_ms = upstream_ms
        self.received = received
        self.sent = sent
        self.labels = labels


class LogPlugin(Plugin, Protocol):
    """A plugin that also records each exchange once it is over.

    `log` runs after the response was sent, or failed, or the client went
    away (status 499 when no response had started), like Kong's log phase.
    It must be quick: it runs on the proxy's event loop.
    """

    def log(self, ctx: RequestContext, served: Served) -> None:
        """Record what happened to the request."""
        ...


def response_header(headers: list[bytes], lowered: bytes) -> bytes | None:
    """Return the last value of a header among response head `headers`."""
    found = None
    for start in range(0, len(headers), 4):
        if headers[start].lower() == lowered:
            found = headers[start + 2]
    return found


class ConfigIndex:
    """Look up entities of the config being compiled, built lazily and shared.

    Plugins ask for what they need while they are built, so the maps are
    made with the rest of the config, off the request path.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self._consumers: dict[str, Mapping[str, Any]] | None = None
        self._basic: dict[str, Mapping[str, Any]] | None = None
        self._tables: dict[str, dict[Any, Any]] = {}
        # The route and service ids of the plugin entity being built, for
        # plugins whose state is shared by scope (Kong's rate-limiting keys).
        self.scope: tuple[str | None, str | None] = (None, None)

    def table(self, name: str) -> dict[Any, Any]:
        """Return the dict that this config's plugins share under `name`.

        It starts empty and lives as long as the config: what plugins keep
        there never outlives the entities it was made from.
        """
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = {}
        return table

    @property
    def consumers(self) -> Mapping[str, Mapping[str, Any]]:
        """Return the consumers by id, and by username where no id is equal."""
        if self._consumers is None:
            consumers: dict[str, Mapping[str, Any]] = {}
            for consumer in self.config.get("consumers") or ():
                if consumer.get("username"):
                    consumers.setdefault(str(consumer["username"]), consumer)
            for consumer in self.config.get("consumers") or ():
                consumers[str(consumer["id"])] = consumer
            self._consumers = consumers
        return self._consumers

    @property
    def basicauth_credentials(self) -> Mapping[str, Mapping[str, Any]]:
        """Return the basic-auth credentials by username."""
        if self._basic is None:
            self._basic = {
                str(c["username"]): c
                for c in self.config.get("basicauth_credentials") or ()
            }
        return self._basic

    def build(self, step: int = 256) -> Iterator[None]:
        """Build every map, yielding after each `step` entities.

        For a compile that runs a slice at a time; without it, each map is
        built whole the first time it is asked for.
        """
        consumers: dict[str, Mapping[str, Any]] = {}
        entities = self.config.get("consumers") or ()
        for position, consumer in enumerate(entities):
            if consumer.get("username"):
                consumers.setdefault(str(consumer["username"]), consumer)
            if position % step == step - 1:
                yield
        for position, consumer in enumerate(entities):
            consumers[str(consumer["id"])] = consumer
            if position % step == step - 1:
                yield
        self._consumers = consumers
        basic: dict[str, Mapping[str, Any]] = {}
        for position, credential in enumerate(
            self.config.get("basicauth_credentials") or ()
        ):
            basic[str(credential["username"])] = credential
            if position % step == step - 1:
                yield
        self._basic = basic

    def consumer(self, key: str) -> Mapping[str, Any] | None:
        """Return the consumer with this id or username."""
        return self.consumers.get(key)

    def basicauth_credential(self, username: str) -> Mapping[str, Any] | None:
        """Return the basic-auth credential with this username."""
        return self.basicauth_credentials.get(username)


PluginFactory = Callable[[Mapping[str, Any], ConfigIndex], Plugin]
