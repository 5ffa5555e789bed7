"""Compile a config snapshot into the router, upstreams and plugin chains.

Everything a request needs that does not depend on the request is computed
here once per config: the upstream's pool key, Host header and timeouts, and
each route's plugin chain in run order. A config that cannot be compiled
raises :exc:`shared.errors.ValidationError` and changes nothing.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from data_plane.plugins.base import ConfigIndex, Plugin
from data_plane.plugins.registry import FACTORIES
from data_plane.router import Router
from data_plane.runtime.paths import upstream_path
from shared.errors import InvalidParameter, ValidationError
from shared.snapshot import Snapshot

_DEFAULT_PORTS = {"http": 80, "https": 443}


@cache
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """Return the client TLS context for upstreams, shared by all of them."""
    context = ssl.create_default_context()
    if not verify:
        # Kong does not verify upstream certificates unless tls_verify is set.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where and how to reach one service."""

    key: str  # the connection pool key: scheme, host, port, verification
    host: str
    port: int
    ssl: ssl.SSLContext | None
    host_header: str
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    retries: int


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """What the proxy does with a request a route matched."""

    route_id: str
    upstream: Upstream | None  # None: the route has no service
    base_path: str
    strip_path: bool
    has_paths: bool
    v1: bool
    preserve_host: bool
    plugins: tuple[Plugin, ...]

    def upstream_uri(self, path: str, matched: int) -> str:
        """Return the upstream path (without query) for a request path."""
        return upstream_path(
            self.base_path,
            path,
            matched,
            strip_path=self.strip_path,
            has_paths=self.has_paths,
            v1=self.v1,
        )


@dataclass(frozen=True)
class CompiledConfig:
    """A snapshot together with everything compiled from it."""

    snapshot: Snapshot
    router: Router[RouteTarget]
    applied_at: float


def _fk(entity: Mapping[str, Any], field: str) -> str | None:
    ref = entity.get(field)
    if isinstance(ref, Mapping):
        value = ref.get("id")
        return str(value) if value is not None else None
    return str(ref) if ref else None


def _seconds(service: Mapping[str, Any], field: str) -> float:
    value = service.get(field)
    return (60_000 if value is None else int(value)) / 1000


def _upstream(service: Mapping[str, Any]) -> Upstream:
    protocol = str(service.get("protocol") or "http")
    if protocol not in _DEFAULT_PORTS:
        raise ValidationError(
            f"service {service.get('id')}: protocol {protocol} is not proxied",
            [InvalidParameter("protocol", "one_of", "expected http or https")],
        )
    host = str(service.get("host") or "")
    if not host:
        raise ValidationError(f"service {service.get('id')}: host is required")
    port = int(service.get("port") or _DEFAULT_PORTS[protocol])
    verify = bool(service.get("tls_verify"))
    host_header = host if port == _DEFAULT_PORTS[protocol] else f"{host}:{port}"
    retries = service.get("retries")
    return Upstream(
        key=f"{protocol}://{host}:{port}/{int(verify)}",
        host=host,
        port=port,
        ssl=_ssl_context(verify) if protocol == "https" else None,
        host_header=host_header,
        connect_timeout=_seconds(service, "connect_timeout"),
        read_timeout=_seconds(service, "read_timeout"),
        write_timeout=_seconds(service, "write_timeout"),
        retries=5 if retries is None else int(retries),
    )


class _PluginTable:
    """Resolve which plugin instance of each name applies to a route."""

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._scoped: dict[tuple[str, str | None, str | None], Plugin] = {}
        self._names: list[str] = []
        unknown: list[InvalidParameter] = []
        for position, entity in enumerate(config.get("plugins") or ()):
            if entity.get("enabled") is False:
                continue
            name = str(entity.get("name"))
            factory = FACTORIES.get(name)
            if factory is None:
                unknown.append(
                    InvalidParameter(
                        f"plugins[{position}].name",
                        "unsupported",
                        f"plugin '{name}' is not available on this data plane node",
                    )
                )
                continue
            if _fk(entity, "consumer") is not None:
                unknown.append(
                    InvalidParameter(
                        f"plugins[{position}].consumer",
                        "unsupported",
                        "consumer-scoped plugins are not supported yet",
                    )
                )
                continue
            scope = (name, _fk(entity, "route"), _fk(entity, "service"))
            self._scoped[scope] = factory(entity.get("config") or {}, index)
            if name not in self._names:
                self._names.append(name)
        if unknown:
            raise ValidationError(
                "the config has plugins this node cannot run", unknown
            )

    def chain(self, route_id: str, service_id: str | None) -> tuple[Plugin, ...]:
        """Return the route's plugins in run order, most specific scope first."""
        chosen = []
        for name in self._names:
            for scope in (
                (name, route_id, service_id),
                (name, route_id, None),
                (name, None, service_id),
                (name, None, None),
            ):
                plugin = self._scoped.get(scope)
                if plugin is not None:
                    chosen.append(plugin)
                    break
        # Kong: higher PRIORITY first, ties broken by name in reverse order.
        chosen.sort(key=lambda p: (-p.priority, _reverse(p.name)))
        return tuple(chosen)


def _reverse(name: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in name)


def compile_snapshot(snapshot: Snapshot) -> CompiledConfig:
    """Build everything the proxy needs from `snapshot`, or raise."""
    config = snapshot.config
    index = ConfigIndex(config)
    plugins = _PluginTable(config, index)
    upstreams = {
        str(service["id"]): _upstream(service)
        for service in config.get("services") or ()
    }
    services = {str(s["id"]): s for s in config.get("services") or ()}

    routes = []
    for route in config.get("routes") or ():
        service_id = _fk(route, "service")
        service = services.get(service_id) if service_id else None
        if service_id and service is None:
            raise ValidationError(
                f"route {route.get('id')} points at a missing service {service_id}"
            )
        target = RouteTarget(
            route_id=str(route.get("id")),
            upstream=upstreams.get(service_id) if service_id else None,
            base_path=str((service or {}).get("path") or "/"),
            strip_path=route.get("strip_path") is not False,
            has_paths=bool(route.get("paths")),
            v1=route.get("path_handling") == "v1",
            preserve_host=bool(route.get("preserve_host")),
            plugins=plugins.chain(str(route.get("id")), service_id),
        )
        routes.append((route, target))
    return CompiledConfig(snapshot, Router(routes), time.time())
