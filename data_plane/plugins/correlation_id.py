"""Run the correlation-id plugin the way Kong does (the request side).

A request without the `header_name` header (or with it empty) is sent
upstream with one, made by `generator`:

- `uuid`: a random UUID;
- `uuid#counter`: a UUID drawn once per process, `#`, and a counter;
- `tracker`: `<node address>-<pid>-<counter>-<time>`, Kong's
  `<server_addr>-<server_port>-<pid>-<connection>-<connection_requests>-
  <time>` without the connection numbers, which plugins do not see.

A request that has one keeps it. `echo_downstream` (the value sent back to
the client) needs a response phase that plugins do not have yet, and is
ignored.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)

PRIORITY = 100001

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
        ctx.rewrite_upstream(HeaderRewrite(((self._lowered, line),), self._names, line))
        return None
