"""Define what a plugin runtime is and what it sees of a request.

A plugin is built once per config from its entity (`build(config, index)`),
then its `access(ctx)` runs for every request of the routes it applies to,
in Kong's order (higher PRIORITY first, ties by name in reverse). `access`
either returns a :class:`LocalResponse`, which ends the request, or None and
may record upstream header rewrites and the authenticated consumer in `ctx`;
a plugin that has to wait returns a :data:`Deferred` of either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class LocalResponse:
    """A response Portico produces itself instead of asking the upstream."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def message(
        cls, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> LocalResponse:
        """Return Kong's `{"message": ...}` error response."""
        return cls(status, orjson.dumps({"message": message}), headers)


@dataclass(slots=True)
class RequestContext:
    """What plugins read and write while a request is in the access phase."""

    method: str
    path: str
    headers: Mapping[str, str]  # lowercase names; the last value of a repeat
    client_ip: str
    # Lowercase name -> (name as sent, value); a None value removes it.
    upstream_headers: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    consumer: Mapping[str, Any] | None = None
    credential: Mapping[str, Any] | None = None
    anonymous: bool = False

    def set_upstream_header(self, name: str, value: str | None) -> None:
        """Send `name: value` upstream instead of the client's, or drop it."""
        self.upstream_headers[name.lower()] = (name, value)


# A plugin that must wait (for a password check in a worker thread) returns
# a future of its answer; the request resumes when it is done.
Deferred = asyncio.Future[LocalResponse | None]


class Plugin(Protocol):
    """A plugin instance compiled from one plugin entity."""

    name: str
    priority: int

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Inspect the request; return a response to end it here."""
        ...


class ConfigIndex:
    """Look up entities of the config being compiled, built lazily and shared."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self._consumers: dict[str, Mapping[str, Any]] | None = None
        self._basic: dict[str, Mapping[str, Any]] | None = None

    def consumer(self, key: str) -> Mapping[str, Any] | None:
        """Return the consumer with this id or username."""
        if self._consumers is None:
            self._consumers = {}
            for consumer in self.config.get("consumers") or ():
                if consumer.get("username"):
                    self._consumers.setdefault(str(consumer["username"]), consumer)
            for consumer in self.config.get("consumers") or ():
                self._consumers[str(consumer["id"])] = consumer
        return self._consumers.get(key)

    def basicauth_credential(self, username: str) -> Mapping[str, Any] | None:
        """Return the basic-auth credential with this username."""
        if self._basic is None:
            self._basic = {
                str(c["username"]): c
                for c in self.config.get("basicauth_credentials") or ()
            }
        return self._basic.get(username)


PluginFactory = Callable[[Mapping[str, Any], ConfigIndex], Plugin]
