"""Match requests to routes with Kong's traditional router semantics, indexed.

A route matches when every field it sets matches: hosts (plain or with one
leftmost or rightmost `*`), methods, headers and paths (plain paths are
prefixes, `~` paths are regexes anchored at the start). Among the routes that
match, the first in Kong's order wins:

1. more fields set (match weight), then Kong's category bits
   (hosts > headers > paths > methods);
2. routes with plain hosts only before those with wildcard hosts;
3. more headers;
4. regex paths (higher `regex_priority` first) before prefixes, longer
   prefixes first;
5. older `created_at` first.

Lookups cost O(path depth + host labels), not O(routes): entries are filed
by host (a dict for plain hosts, suffix and prefix dicts for wildcards), then
by path in a dict-per-segment trie. Regex entries are tried in order only
while they could still beat the best indexed candidate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shared.errors import ValidationError
from shared.schema import compile_path_regex

T = TypeVar("T")

# Kong's category bits (kong/router/traditional.lua MATCH_RULES).
_HOST, _HEADER, _URI, _METHOD, _SNI = 0x40, 0x20, 0x10, 0x08, 0x04


@dataclass(slots=True)
class _Entry(Generic[T]):
    """One (route, path) pair: a route with several paths files one per path."""

    target: T
    key: tuple[int | str, ...]
    methods: frozenset[str] | None
    headers: tuple[tuple[str, frozenset[str], re.Pattern[str] | None], ...]
    prefix: str | None
    regex: re.Pattern[str] | None

    def accepts(self, method: str, headers: Mapping[str, str]) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        for name, values, pattern in self.headers:
            value = headers.get(name)
            if value is None:
                return False
            if pattern is not None:
                if pattern.search(value) is None:
                    return False
            elif value.lower() not in values:
                return False
        return True


@dataclass(slots=True)
class _Node(Generic[T]):
    """A trie node; `tails` holds prefixes whose last segment is partial."""

    children: dict[str, _Node[T]] = field(default_factory=dict)
    tails: dict[str, list[_Entry[T]]] = field(default_factory=dict)
    tail_lengths: tuple[int, ...] = ()


@dataclass(slots=True)
class _Shelf(Generic[T]):
    """Every entry filed under one host key (or under none)."""

    trie: _Node[T] = field(default_factory=_Node)
    regexes: list[_Entry[T]] = field(default_factory=list)
    pathless: list[_Entry[T]] = field(default_factory=list)

    def add(self, entry: _Entry[T]) -> None:
        if entry.regex is not None:
            self.regexes.append(entry)
        elif entry.prefix is None:
            self.pathless.append(entry)
        else:
            segments = entry.prefix.split("/")
            node = self.trie
            for segment in segments[:-1]:
                node = node.children.setdefault(segment, _Node())
            node.tails.setdefault(segments[-1], []).append(entry)

    def seal(self) -> None:
        self.regexes.sort(key=lambda e: e.key)
        self.pathless.sort(key=lambda e: e.key)
        stack = [self.trie]
        while stack:
            node = stack.pop()
            node.tail_lengths = tuple(sorted({len(t) for t in node.tails}))
            for entries in node.tails.values():
                entries.sort(key=lambda e: e.key)
            stack.extend(node.children.values())


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[T]):
    """The winning route and how much of the path its path matched."""

    target: T
    matched: int


def _is_plain_host(host: str) -> bool:
    return "*" not in host


class Router(Generic[T]):
    """Find the route for a request among `(route entity, target)` pairs."""

    def __init__(self, routes: Sequence[tuple[Mapping[str, Any], T]]) -> None:
        self._plain: dict[str, _Shelf[T]] = {}
        self._suffix: dict[str, _Shelf[T]] = {}  # "*.example.com" under ".example.com"
        self._prefix: dict[str, _Shelf[T]] = {}  # "example.*" under "example."
        self._hostless: _Shelf[T] = _Shelf()
        self.candidate_checks = 0  # entries examined, for tests and benchmarks
        for route, target in routes:
            self._file(route, target)
        for shelf in self._shelves():
            shelf.seal()

    def _shelves(self) -> list[_Shelf[T]]:
        return [
            *self._plain.values(),
            *self._suffix.values(),
            *self._prefix.values(),
            self._hostless,
        ]

    def _file(self, route: Mapping[str, Any], target: T) -> None:
        """File one entry per path of `route` under each of its hosts."""
        hosts = [h.lower() for h in route.get("hosts") or ()]
        methods = route.get("methods") or None
        headers = _compile_headers(route)
        paths = route.get("paths") or ()
        bits = (
            (_HOST if hosts else 0)
            | (_HEADER if headers else 0)
            | (_URI if paths else 0)
            | (_METHOD if methods else 0)
            | (_SNI if route.get("snis") else 0)
        )
        weight = bin(bits).count("1")
        wildcard = int(any(not _is_plain_host(h) for h in hosts))
        created_at = int(route.get("created_at") or 0)
        route_id = str(route.get("id") or "")
        regex_priority = int(route.get("regex_priority") or 0)
        method_set = frozenset(m.upper() for m in methods) if methods else None

        def entry(
            prefix: str | None, regex: re.Pattern[str] | None, rank: tuple[int, int]
        ) -> _Entry[T]:
            key = (-weight, -bits, wildcard, -len(headers), *rank, created_at)
            return _Entry(target, (*key, route_id), method_set, headers, prefix, regex)

        entries: list[_Entry[T]] = []
        for path in paths:
            if path.startswith("~"):
                try:
                    pattern = compile_path_regex(path)
                except re.error as exc:
                    raise ValidationError(f"route {route_id}: bad regex path") from exc
                entries.append(entry(None, pattern, (0, -regex_priority)))
            else:
                entries.append(entry(path, None, (1, -len(path))))
        if not paths:
            if not (hosts or methods or headers):
                return  # an SNI-only route never matches plain HTTP
            entries.append(entry(None, None, (1, 0)))

        for new in entries:
            if not hosts:
                self._hostless.add(new)
            for host in hosts:
                self._shelf_for(host).add(new)

    def _shelf_for(self, host: str) -> _Shelf[T]:
        if host.startswith("*."):
            return self._suffix.setdefault(host[1:], _Shelf())
        if host.endswith(".*"):
            return self._prefix.setdefault(host[:-1], _Shelf())
        return self._plain.setdefault(host, _Shelf())

    def _shelves_for(self, host: str) -> list[_Shelf[T]]:
        """Return the shelves whose host pattern matches `host`."""
        shelves = []
        plain = self._plain.get(host)
        if plain is not None:
            shelves.append(plain)
        if self._suffix or self._prefix:
            dot = host.find(".")
            while dot > 0:
                # "*.b.c" matches "a.b.c" and "x.a.b.c": one label or more.
                suffix = self._suffix.get(host[dot:])
                if suffix is not None:
                    shelves.append(suffix)
                prefix = self._prefix.get(host[: dot + 1])
                if prefix is not None and dot + 1 < len(host):
                    shelves.append(prefix)
                dot = host.find(".", dot + 1)
        shelves.append(self._hostless)
        return shelves

    def match(
        self, method: str, host: str, path: str, headers: Mapping[str, str]
    ) -> RouteMatch[T] | None:
        """Return the best route for the request, or None.

        `host` is the Host header without its port, lowercased; `path` is
        normalized and has no query string; `headers` maps lowercase names to
        values.
        """
        best: _Entry[T] | None = None
        matched = 0
        shelves = self._shelves_for(host) if host else [self._hostless]
        segments = path.split("/")
        for shelf in shelves:
            # Prefix entries: walk the trie, deeper nodes hold longer prefixes.
            node: _Node[T] | None = shelf.trie
            depth = 0
            last = len(segments) - 1
            while node is not None:
                segment = segments[depth]
                for length in node.tail_lengths:
                    if length > len(segment):
                        break
                    for candidate in node.tails.get(segment[:length], ()):
                        if best is not None and candidate.key >= best.key:
                            break
                        self.candidate_checks += 1
                        if candidate.accepts(method, headers):
                            best = candidate
                            matched = len(candidate.prefix or "")
                            break
                if depth == last:
                    break
                node = node.children.get(segment)
                depth += 1
            for candidate in shelf.pathless:
                if best is not None and candidate.key >= best.key:
                    break
                self.candidate_checks += 1
                if candidate.accepts(method, headers):
                    best, matched = candidate, 0
                    break
            for candidate in shelf.regexes:
                if best is not None and candidate.key >= best.key:
                    break
                self.candidate_checks += 1
                if candidate.accepts(method, headers):
                    assert candidate.regex is not None, "regex entry without pattern"
                    found = candidate.regex.match(path)
                    if found is not None:
                        best, matched = candidate, found.end()
                        break
        if best is None:
            return None
        return RouteMatch(best.target, matched)


def _compile_headers(
    route: Mapping[str, Any],
) -> tuple[tuple[str, frozenset[str], re.Pattern[str] | None], ...]:
    """Return (lowercase name, lowercase values, regex) per route header."""
    compiled = []
    for name, values in sorted((route.get("headers") or {}).items()):
        values = [values] if isinstance(values, str) else list(values)
        pattern = None
        if len(values) == 1 and values[0].startswith("~*"):
            pattern = re.compile(values[0][2:], re.IGNORECASE)
        compiled.append((name.lower(), frozenset(v.lower() for v in values), pattern))
    return tuple(compiled)
