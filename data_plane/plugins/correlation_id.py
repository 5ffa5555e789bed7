"""Run the correlation-id plugin the way Kong does (the request side).

A request without the `header_name` header (or with it empty) is sent
upstream with one, made by `generator`:

- `uuid`: a random UUID;
- `uuid#counter`: a UUID drawn once per process, `#`, and a counter;
- `tracker`: `<node address>-<pid>-<counter>-<time>`, Kong's
  `<server_addr>-<server_port>-<pid>-<connection>-<connection_requests>-
  <time>` without the connection numbers, which plugins do not see.

A request that has one keeps it. With `echo_downstream` the id (made or
kept) is sent back to the client in the same header, on the upstream's
response and on any a later plugin answers itself.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    Plugin,
    RequestContext,
)

PRIORITY: Final = 100001

_PROCESS_UUID = str(uuid.uuid4())
_COUNTER = itertools.count(1)
_NODE = socket.gethostname()


def _uuid() -> str:
    return str(uuid.uuid4())


def _uuid_counter() -> str:
    return f"{_PROCESS_UUID}#{next(_COUNTER)}"


def _tracker() -> str:
    return f"{_NODE}-{os.getpid()}-{next(_COUNTER)}-{time.time():.3f}"


GENERATORS: Mapping[str, Callable[[], str]] = {
    "uuid": _uuid,
    "uuid#counter": _uuid_counter,
    "tracker": _tracker,
}


def build(config: Mapping[str, Any], index: ConfigIndex) -> Plugin:
    """Return the plugin for `config`; only an echo has a response phase."""
    if config.get("echo_downstream"):
        return EchoedCorrelationId(config, index)
    return CorrelationId(config, index)


class CorrelationId:
    """One correlation-id plugin entity, compiled."""

    name = "correlation-id"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        header = str(config.get("header_name") or "Kong-Request-ID")
        self._lookup = header.lower()
        self._lowered = self._lookup.encode("latin-1")
        self._names = frozenset((self._lowered,))
        self._prefix = f"{header}: ".encode("latin-1")
        self._generate = GENERATORS[str(config.get("generator") or "uuid#counter")]

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Give the request an id unless it carries one."""
        if ctx.headers.get(self._lookup):
            return None
        line = self._prefix + self._generate().encode() + b"\r\n"
        ctx.rewrite_upstream(HeaderRewrite(self._names, line, self._names))
        return None


class EchoedCorrelationId(CorrelationId):
    """A correlation-id entity with `echo_downstream`: the client gets the id."""

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Give the request an id unless it has one; echo it in the response."""
        given = ctx.headers.get(self._lookup)
        if given:
            line = self._prefix + given.encode("latin-1") + b"\r\n"
        else:
            line = self._prefix + self._generate().encode() + b"\r\n"
            ctx.rewrite_upstream(HeaderRewrite(self._names, line, self._names))
        ctx.rewrite_downstream(HeaderRewrite(self._names, line, self._names))
        return None

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Leave the head to the rewrite chosen in the access phase."""
        return None
