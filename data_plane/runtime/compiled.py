"""Compile a config snapshot into the router, upstreams and plugin chains.

Everything a request needs that does not depend on the request is computed
here once per config: the upstream's pool key, Host header and timeouts, and
each route's plugin chain in run order. A config that cannot be compiled
raises :exc:`shared.errors.ValidationError` and changes nothing.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Generator, Iterator, Mapping, Set
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar, cast

from data_plane.plugins.base import (
    BodyPlugin,
    ConfigIndex,
    LogPlugin,
    Plugin,
    ResponsePlugin,
)
from data_plane.plugins.registry import FACTORIES
from data_plane.plugins.scoped import ConsumerScoped
from data_plane.router import STEP, Router
from data_plane.runtime.paths import upstream_path
from shared.errors import InvalidParameter, ValidationError
from shared.snapshot import Snapshot

_DEFAULT_PORTS = {"http": 80, "https": 443}

R = TypeVar("R")
_FREE_STEP = 512  # pairs freed per step once the router is built


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
    host_line: bytes  # the Host header line sent upstream, encoded
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    retries: int


class RouteTarget:
    """What the proxy does with a request a route matched.

    Immutable by convention: a target is shared by every config version in
    which its route and service stay the same.
    """

    __slots__ = (
        "route_id",
        "upstream",
        "base_path",
        "strip_path",
        "has_paths",
        "v1",
        "preserve_host",
        "root_strip",
        "labels",
    )

    def __init__(
        self,
        route: Mapping[str, Any],
        service: Mapping[str, Any] | None,
        upstream: Upstream | None,
    ) -> None:
        self.route_id = str(route.get("id"))
        self.upstream = upstream  # None: the route has no service
        self.base_path = str((service or {}).get("path") or "/")
        self.strip_path = route.get("strip_path") is not False
        self.has_paths = bool(route.get("paths"))
        self.v1 = route.get("path_handling") == "v1"
        self.preserve_host = bool(route.get("preserve_host"))
        # The service path is "/" and the matched prefix is stripped: the
        # upstream path is what is left of the request's, v0 and v1 alike.
        self.root_strip = self.base_path == "/" and self.strip_path and self.has_paths
        # How Kong's logs and metrics name the service and the route; Kong
        # records nothing for a route without a service.
        self.labels = (
            (
                str(service.get("name") or service.get("host") or ""),
                str(route.get("name") or self.route_id),
            )
            if service is not None
            else None
        )

    def upstream_uri(self, path: str, matched: int) -> str:
        """Return the upstream path (without query) for a request path."""
        if self.root_strip:
            rest = path[matched:]
            return rest if rest[:1] == "/" else "/" + rest
        return upstream_path(
            self.base_path,
            path,
            matched,
            strip_path=self.strip_path,
            has_paths=self.has_paths,
            v1=self.v1,
        )


def _has(plugin: Plugin, method: str, flag: str) -> bool:
    """Tell whether `plugin` has the phase `method`.

    A consumer-scoped step has it when one of its instances does, which its
    attribute `flag` says.
    """
    if isinstance(plugin, ConsumerScoped):
        return bool(getattr(plugin, flag))
    return hasattr(plugin, method)


# (position in the chain, plugin) for each plugin with a `header_filter`
Filters = tuple[tuple[int, ResponsePlugin], ...]


def response_filters(chain: tuple[Plugin, ...]) -> Filters:
    """Return the plugins of `chain` that have a response phase."""
    return tuple(
        (position, cast(ResponsePlugin, plugin))
        for position, plugin in enumerate(chain)
        if _has(plugin, "header_filter", "responds")
    )


# The plugins of a chain with a body phase, in chain order; each has a
# response phase too, so only a chain with filters has any.
BodyFilters = tuple[BodyPlugin, ...]


def body_phase(chain: tuple[Plugin, ...]) -> BodyFilters:
    """Return the plugins of `chain` that change response bodies."""
    return tuple(
        cast(BodyPlugin, p) for p in chain if _has(p, "body_filter", "changes_bodies")
    )


# The plugins of a chain with a log phase, in chain order.
Loggers = tuple[LogPlugin, ...]


def log_phase(chain: tuple[Plugin, ...]) -> Loggers:
    """Return the plugins of `chain` that record each finished exchange."""
    return tuple(cast(LogPlugin, p) for p in chain if _has(p, "log", "logs"))


@dataclass(frozen=True, slots=True)
class Phases:
    """A route's plugins by phase, sorted out when the config is compiled.

    A request looks its route's up once and finds every list it needs.
    """

    access: tuple[Plugin, ...] = ()
    filters: Filters = ()  # with a response phase
    bodies: BodyFilters = ()  # of those, with a body phase
    loggers: Loggers = ()  # with a log phase

    @classmethod
    def of(cls, chain: tuple[Plugin, ...]) -> Phases:
        """Return the phases of `chain`, the plugins in the order they run."""
        filters = response_filters(chain)
        bodies = body_phase(chain) if filters else ()
        return cls(chain, filters, bodies, log_phase(chain))


NO_PHASES = Phases()


@dataclass(frozen=True)
class CompiledConfig:
    """A snapshot together with everything compiled from it."""

    snapshot: Snapshot
    router: Router[RouteTarget]
    applied_at: float
    # The plugins, by phase, of the routes that route- or service-scoped
    # plugins apply to; every other route runs `default_phases` (the global
    # plugins).
    phases: Mapping[str, Phases] = field(default_factory=dict)
    default_phases: Phases = NO_PHASES
    compile_seconds: float = 0.0  # from the start of the compile to the swap
    # What the next compile reuses: route id -> (entity, service, target),
    # service id -> (entity, upstream).
    routes: Mapping[str, tuple[Mapping[str, Any], Any, RouteTarget]] = field(
        default_factory=dict
    )
    upstreams: Mapping[str, tuple[Mapping[str, Any], Upstream]] = field(
        default_factory=dict
    )

    @property
    def chains(self) -> Mapping[str, tuple[Plugin, ...]]:
        """Return the plugin chains of the routes scoped plugins apply to."""
        return {route_id: p.access for route_id, p in self.phases.items()}

    @property
    def default_chain(self) -> tuple[Plugin, ...]:
        """Return the chain of every other route: the global plugins."""
        return self.default_phases.access

    def phases_of(self, target: RouteTarget) -> Phases:
        """Return the plugins a request to `target` runs, by phase."""
        return self.phases.get(target.route_id, self.default_phases)

    def chain(self, target: RouteTarget) -> tuple[Plugin, ...]:
        """Return the plugins a request to `target` runs, in order."""
        return self.phases_of(target).access

    def filters_of(self, target: RouteTarget) -> Filters:
        """Return the response-phase plugins of `target`'s chain."""
        return self.phases_of(target).filters

    def bodies_of(self, target: RouteTarget) -> BodyFilters:
        """Return the body-phase plugins of `target`'s chain."""
        return self.phases_of(target).bodies

    def loggers_of(self, target: RouteTarget) -> Loggers:
        """Return the log-phase plugins of `target`'s chain."""
        return self.phases_of(target).loggers


# What a compile keeps of a route: (entity, service entity, target).
_RoutePart = tuple[Mapping[str, Any], Any, RouteTarget]


def _route_part(
    route: Mapping[str, Any],
    route_id: str,
    service_id: str | None,
    upstreams: Mapping[str, tuple[Mapping[str, Any], Upstream]],
    old_route: _RoutePart | None,
) -> _RoutePart:
    """Return what the compile keeps of `route`: the old part if it is equal."""
    found = upstreams.get(service_id) if service_id else None
    if service_id and found is None:
        raise ValidationError(
            f"route {route_id} points at a missing service {service_id}"
        )
    service, upstream = found if found is not None else (None, None)
    if (
        old_route is not None
        and old_route[1] is service
        and (old_route[0] is route or old_route[0] == route)
        and old_route[2].upstream is upstream
    ):
        return old_route
    return (route, service, RouteTarget(route, service, upstream))


def _same_upstream(
    old: tuple[Mapping[str, Any], Upstream] | None,
    new: tuple[Mapping[str, Any], Upstream],
) -> bool:
    """Tell whether a compile kept a service's upstream as it was."""
    return old is not None and old[1] is new[1]


def _fk(entity: Mapping[str, Any], field: str) -> str | None:
    ref = entity.get(field)
    if ref is None:
        return None
    if type(ref) is dict or isinstance(ref, Mapping):
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
        host_line=b"Host: " + host_header.encode("latin-1") + b"\r\n",
        connect_timeout=_seconds(service, "connect_timeout"),
        read_timeout=_seconds(service, "read_timeout"),
        write_timeout=_seconds(service, "write_timeout"),
        retries=5 if retries is None else int(retries),
    )


# (route id, service id) -> consumer id -> the instance for that consumer
_ByConsumer = dict[tuple[str | None, str | None], dict[str, Plugin]]


class _PluginTable:
    """Resolve which plugin instance of each name applies to a route.

    Kong's precedence, most specific first: route+service+consumer,
    route+consumer, service+consumer, route+service, consumer, route,
    service, global. A name with instances for consumers runs as a
    :class:`ConsumerScoped` on the routes they reach, which picks by the
    consumer authenticated when its turn comes; other routes do not see it.
    """

    def __init__(self) -> None:
        self._scoped: dict[tuple[str, str | None, str | None], Plugin] = {}
        # name -> its consumer-scoped instances
        self._consumers: dict[str, _ByConsumer] = {}
        self._names: list[str] = []
        # The route and service ids that scoped plugins name.
        self._routes: set[str] = set()
        self._services: set[str] = set()

    def fill(self, config: Mapping[str, Any], index: ConfigIndex) -> Iterator[None]:
        """Build the config's plugins; yield every few; raise if one is unknown."""
        unknown: list[InvalidParameter] = []
        for position, entity in enumerate(config.get("plugins") or ()):
            if position % STEP == STEP - 1:
                yield
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
            route, service = _fk(entity, "route"), _fk(entity, "service")
            index.scope = (route, service)
            plugin = factory(entity.get("config") or {}, index)
            consumer = _fk(entity, "consumer")
            if consumer is not None:
                scopes = self._consumers.setdefault(name, {})
                scopes.setdefault((route, service), {})[consumer] = plugin
            else:
                self._scoped[(name, route, service)] = plugin
            if name not in self._names:
                self._names.append(name)
            if route is not None:
                self._routes.add(route)
            if service is not None:
                self._services.add(service)
        if unknown:
            raise ValidationError(
                "the config has plugins this node cannot run", unknown
            )

    def scoped(self) -> tuple[Set[str], Set[str]]:
        """Return the route ids and the service ids that scoped plugins name."""
        return self._routes, self._services

    def chain(self, route_id: str | None, service_id: str | None) -> tuple[Plugin, ...]:
        """Return the route's plugins in run order, most specific scope first.

        With no route and no service, the global plugins.
        """
        chosen: list[Plugin] = []
        for name in self._names:
            found = None
            for scope in (
                (name, route_id, service_id),
                (name, route_id, None),
                (name, None, service_id),
                (name, None, None),
            ):
                found = self._scoped.get(scope)
                if found is not None:
                    break
            picks = self._for_consumers(name, route_id, service_id)
            if picks:
                chosen.append(ConsumerScoped(name, picks, found))
            elif found is not None:
                chosen.append(found)
        # Kong: higher PRIORITY first, ties broken by name in reverse order.
        chosen.sort(key=lambda p: (-p.priority, _reverse(p.name)))
        return tuple(chosen)

    def _for_consumers(
        self,
        name: str,
        route_id: str | None,
        service_id: str | None,
    ) -> Mapping[str, Plugin]:
        """Return, by consumer id, the instances that consumers get here.

        The consumer alone (level 5) yields to route+service (4); the
        levels naming a consumer and the route or the service (3 to 1)
        override it, each the one before. Routes that only see the consumer
        level share one mapping, so that many such routes cost no copies.
        """
        scopes = self._consumers.get(name)
        if not scopes:
            return {}
        layers = []
        both = route_id is not None and service_id is not None
        if not (both and (name, route_id, service_id) in self._scoped):
            layers.append(scopes.get((None, None)))
        if service_id is not None:
            layers.append(scopes.get((None, service_id)))
        if route_id is not None:
            layers.append(scopes.get((route_id, None)))
        if both:
            layers.append(scopes.get((route_id, service_id)))
        found = [layer for layer in layers if layer]
        if len(found) <= 1:
            return found[0] if found else {}
        merged: dict[str, Plugin] = {}
        for layer in found:
            merged.update(layer)
        return merged


def _reverse(name: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in name)


def compile_snapshot(
    snapshot: Snapshot, previous: CompiledConfig | None = None
) -> CompiledConfig:
    """Build everything the proxy needs from `snapshot`, or raise.

    With the config being served as `previous`, what did not change is
    taken from it instead of built again: the upstream of a service whose
    entity is equal, the target of a route whose entity and service are
    equal, and the router's shelves that no changed route sits on. Plugins
    and the entity index are always built anew, so that a plugin never sees
    consumers or credentials of another version.
    """
    return finish(compile_steps(snapshot, previous))


def finish(steps: Generator[None, None, R]) -> R:
    """Run `steps` to its end at once and return what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: R = done.value
            return result


def compile_steps(
    snapshot: Snapshot, previous: CompiledConfig | None = None
) -> Generator[None, None, CompiledConfig]:
    """Compile like :func:`compile_snapshot`, yielding every few entities.

    A caller can run it a slice at a time on the event loop, serving
    requests in between.
    """
    config = snapshot.config
    index = ConfigIndex(config)
    yield from index.build(STEP)
    plugins = _PluginTable()
    yield from plugins.fill(config, index)
    scoped_routes, scoped_services = plugins.scoped()
    old_upstreams = previous.upstreams if previous is not None else {}
    old_routes = previous.routes if previous is not None else {}

    upstreams: dict[str, tuple[Mapping[str, Any], Upstream]] = {}
    for service in config.get("services") or ():
        old = old_upstreams.get(str(service["id"]))
        if old is not None and (old[0] is service or old[0] == service):
            upstreams[str(service["id"])] = old
        else:
            upstreams[str(service["id"])] = (service, _upstream(service))

    routes: dict[str, _RoutePart] = {}
    filed: list[tuple[Mapping[str, Any], RouteTarget]] = []
    unchanged: set[str] = set()
    phases: dict[str, Phases] = {}
    # With every service as it was (the same upstream: compiled, a tuple
    # taken out of a dict may be a new box around the same items), a route
    # that is the very entity it was is unchanged, service and all: a
    # delta's ten thousand others cost a lookup each.
    services_kept = len(upstreams) == len(old_upstreams) and all(
        _same_upstream(old_upstreams.get(key), kept) for key, kept in upstreams.items()
    )
    for position, route in enumerate(config.get("routes") or ()):
        if position % STEP == STEP - 1:
            yield
        route_id = str(route.get("id"))
        old_route = old_routes.get(route_id)
        if services_kept and old_route is not None and old_route[0] is route:
            part = old_route
            unchanged.add(route_id)
            scoped = route_id in scoped_routes
            service_id = _fk(route, "service") if scoped or scoped_services else None
            scoped = scoped or service_id in scoped_services
        else:
            service_id = _fk(route, "service")
            part = _route_part(route, route_id, service_id, upstreams, old_route)
            if old_route is not None and part[2] is old_route[2]:
                unchanged.add(route_id)
            scoped = route_id in scoped_routes or service_id in scoped_services
        routes[route_id] = part
        filed.append((route, part[2]))
        if scoped:
            phases[route_id] = Phases.of(plugins.chain(route_id, service_id))

    router = yield from Router.build(
        filed,
        previous=previous.router if previous is not None else None,
        unchanged=unchanged,
    )
    # Freed a slice at a time: ten thousand pairs at once hold the loop
    # for most of a millisecond.
    while filed:
        del filed[-_FREE_STEP:]
        yield
    return CompiledConfig(
        snapshot,
        router,
        time.time(),
        phases=phases,
        default_phases=Phases.of(plugins.chain(None, None)),
        routes=routes,
        upstreams=upstreams,
    )
