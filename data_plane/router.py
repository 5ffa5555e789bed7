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
by path in a dict-per-segment trie. A regex path is filed in the same trie
under the literal text every match of it starts with (`/users/` for
`~/users/\\d+$`), so only the regexes whose literal start the path has are
tried; a regex with no literal start (or a top-level `|`) is tried for every
path of its host, in order, only while it could still beat the best
candidate found.
"""

from __future__ import annotations

import re
from collections.abc import (
    Container,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Generic, TypeVar

from shared.errors import ValidationError
from shared.schema import compile_path_regex

T = TypeVar("T")

# Kong's category bits (kong/router/traditional.lua MATCH_RULES).
_HOST, _HEADER, _URI, _METHOD, _SNI = 0x40, 0x20, 0x10, 0x08, 0x04

# Compiled regex paths and their literal starts by source, kept across
# configs: a new config version mostly repeats the regexes of the last one.
# Cleared when it fills up.
_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {}
_PATTERNS_LIMIT = 100_000

# Route id -> (route entity, its entries without targets), made by
# `prepare` off the event loop for the next build; a build takes what it
# uses and drops the rest.
_PREPARED: dict[str, tuple[Mapping[str, Any], _Filing[Any]]] = {}
# A whole router built ahead by `prepare`, with the routes it was built from.
_PREPARED_WHOLE: list[tuple[list[Mapping[str, Any]], Router[Any]]] = []

_Headers = tuple[tuple[str, frozenset[str], re.Pattern[str] | None], ...]

# Routes (or shelves) handled between two yields of a router being built a
# slice at a time.
STEP = 16
# A shelf whose entries changed by more than this is built anew rather than
# derived from the previous router's.
DERIVE_LIMIT = 256


class RouteMatch(Generic[T]):
    """The winning route and how much of the path its path matched."""

    __slots__ = ("target", "matched", "captures")

    def __init__(
        self, target: T, matched: int, captures: re.Match[str] | None = None
    ) -> None:
        self.target = target
        self.matched = matched
        self.captures = captures  # a regex path's match, for its groups


class _Entry(Generic[T]):
    """One (route, path) pair: a route with several paths files one per path."""

    __slots__ = (
        "target",
        "key",
        "methods",
        "headers",
        "prefix",
        "regex",
        "unconditional",
        "found",
    )

    def __init__(
        self,
        target: T,
        key: tuple[int | str, ...],
        methods: frozenset[str] | None,
        headers: _Headers,
        prefix: str | None,
        regex: re.Pattern[str] | None,
    ) -> None:
        self.target = target
        self.key = key
        self.methods = methods
        self.headers = headers
        self.prefix = prefix  # where it is filed: a prefix, or a regex's literal
        self.regex = regex
        # Neither methods nor headers: the path and host decide alone.
        self.unconditional = methods is None and not headers
        # What a prefix or pathless entry always yields, made once.
        self.found = RouteMatch(target, 0 if regex or not prefix else len(prefix))

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


# Shared by every node without children or tails until it gets some; never
# written to (a node gets a dict of its own first).
_NOTHING: dict[str, Any] = {}


class _Node(Generic[T]):
    """A trie node; `tails` holds prefixes whose last segment is partial.

    The root stands for the "/" every path starts with; its children are
    first segments.
    """

    __slots__ = ("children", "tails", "tail_lengths")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = _NOTHING
        self.tails: dict[str, list[_Entry[T]]] = _NOTHING
        self.tail_lengths: tuple[int, ...] = ()


class _Shelf(Generic[T]):
    """Every entry filed under one host key (or under none)."""

    __slots__ = ("trie", "regexes", "pathless")

    def __init__(self) -> None:
        self.trie: _Node[T] = _Node()
        self.regexes: list[_Entry[T]] = []  # regexes with no literal start
        self.pathless: list[_Entry[T]] = []

    def add(self, entry: _Entry[T]) -> None:
        prefix = entry.prefix
        if not prefix:
            (self.pathless if entry.regex is None else self.regexes).append(entry)
            return
        segments = prefix[1:].split("/")
        node = self.trie
        for segment in segments[:-1]:
            child = node.children.get(segment)
            if child is None:
                if node.children is _NOTHING:
                    node.children = {}
                child = node.children[segment] = _Node()
            node = child
        tail = node.tails.get(segments[-1])
        if tail is not None:
            tail.append(entry)
        elif node.tails is _NOTHING:
            node.tails = {segments[-1]: [entry]}
        else:
            node.tails[segments[-1]] = [entry]

    def derived(
        self, removed: Sequence[_Entry[T]], added: Sequence[_Entry[T]]
    ) -> _Shelf[T]:
        """Return a sealed copy of this sealed shelf, less `removed`, plus `added`.

        Only the trie nodes and lists on the way to those entries are copied;
        everything else is shared, and this shelf stays as it was (requests
        in flight still walk it).
        """
        shelf: _Shelf[T] = _Shelf()
        shelf.trie = self.trie
        shelf.regexes, shelf.pathless = self.regexes, self.pathless
        own: set[int] = set()  # ids of the nodes and lists this copy owns
        lists: list[list[_Entry[T]]] = []  # lists to put in order again
        nodes: list[_Node[T]] = []  # nodes whose tails changed

        def writable(entries: list[_Entry[T]]) -> list[_Entry[T]]:
            if id(entries) in own:
                return entries
            copy = list(entries)
            own.add(id(copy))
            lists.append(copy)
            return copy

        def node_of(prefix: str) -> tuple[_Node[T], str]:
            # The node holding `prefix`'s tail, copied along the way.
            segments = prefix[1:].split("/")
            if id(shelf.trie) not in own:
                shelf.trie = _copy_node(shelf.trie)
                own.add(id(shelf.trie))
            node = shelf.trie
            for segment in segments[:-1]:
                child = node.children.get(segment)
                if child is None or id(child) not in own:
                    child = _Node() if child is None else _copy_node(child)
                    own.add(id(child))
                    if node.children is _NOTHING:
                        node.children = {}
                    node.children[segment] = child
                node = child
            if node.tails is _NOTHING:
                node.tails = {}
            nodes.append(node)
            return node, segments[-1]

        for entry in removed:
            if not entry.prefix:
                if entry.regex is None:
                    shelf.pathless = writable(shelf.pathless)
                    _remove(shelf.pathless, entry)
                else:
                    shelf.regexes = writable(shelf.regexes)
                    _remove(shelf.regexes, entry)
                continue
            node, tail = node_of(entry.prefix)
            entries = node.tails.get(tail)
            if entries is not None:
                entries = node.tails[tail] = writable(entries)
                _remove(entries, entry)
                if not entries:
                    del node.tails[tail]
        for entry in added:
            if not entry.prefix:
                if entry.regex is None:
                    shelf.pathless = writable(shelf.pathless)
                    shelf.pathless.append(entry)
                else:
                    shelf.regexes = writable(shelf.regexes)
                    shelf.regexes.append(entry)
                continue
            node, tail = node_of(entry.prefix)
            entries = node.tails.get(tail)
            if entries is None:
                entries = []
                own.add(id(entries))
                lists.append(entries)
            node.tails[tail] = entries = writable(entries)
            entries.append(entry)
        for entries in lists:
            entries.sort(key=_key)
        for node in nodes:
            node.tail_lengths = tuple(sorted({len(t) for t in node.tails}))
        return shelf

    def is_empty(self) -> bool:
        """Tell whether nothing at all is filed here."""
        return not (self.regexes or self.pathless or _holds_entries(self.trie))

    def seal(self) -> Iterator[None]:
        """Put every list in Kong's order; yield every few nodes."""
        if len(self.regexes) > 1:
            self.regexes.sort(key=_key)
        if len(self.pathless) > 1:
            self.pathless.sort(key=_key)
        stack = [self.trie]
        sealed = 0
        while stack:
            sealed += 1
            if sealed % STEP == 0:
                yield
            node = stack.pop()
            tails = node.tails
            if len(tails) == 1:
                ((tail, entries),) = tails.items()
                node.tail_lengths = (len(tail),)
                if len(entries) > 1:
                    entries.sort(key=_key)
            elif tails:
                node.tail_lengths = tuple(sorted({len(t) for t in tails}))
                for entries in tails.values():
                    if len(entries) > 1:
                        entries.sort(key=_key)
            if node.children:
                stack.extend(node.children.values())


def _key(entry: _Entry[T]) -> tuple[int | str, ...]:
    return entry.key


def _copy_node(node: _Node[T]) -> _Node[T]:
    """Return a node with the same children and tails, in dicts of its own."""
    copy: _Node[T] = _Node()
    if node.children:
        copy.children = dict(node.children)
    if node.tails:
        copy.tails = dict(node.tails)
    copy.tail_lengths = node.tail_lengths
    return copy


def _remove(entries: list[_Entry[T]], entry: _Entry[T]) -> None:
    """Remove `entry` itself (not an equal one) from `entries`, if there."""
    for position, candidate in enumerate(entries):
        if candidate is entry:
            del entries[position]
            return


def _holds_entries(node: _Node[T]) -> bool:
    stack = [node]
    while stack:
        node = stack.pop()
        if any(node.tails.values()):
            return True
        stack.extend(node.children.values())
    return False


# Where a shelf sits: the dict it is kept in and its host key there.
_PLAIN, _SUFFIX, _PREFIX, _NO_HOST = 0, 1, 2, 3
_ShelfKey = tuple[int, str]
_HOSTLESS: _ShelfKey = (_NO_HOST, "")


class _Filing(Generic[T]):
    """A route's entries and the shelves they are filed on."""

    __slots__ = ("entries", "shelves")

    def __init__(self, entries: list[_Entry[T]], shelves: list[_ShelfKey]) -> None:
        self.entries = entries
        self.shelves = shelves


class Router(Generic[T]):
    """Find the route for a request among `(route entity, target)` pairs.

    Given the router of the previous config and the ids of the routes whose
    entity and target are the ones it filed (`unchanged`), only the shelves
    that a changed, new or removed route sits on change: each is derived
    from the previous one, copying just the trie nodes on the way to the
    entries that left or joined it (built anew when many did); the others
    are shared. The previous router stays as it was.
    """

    def __init__(
        self,
        routes: Sequence[tuple[Mapping[str, Any], T]],
        *,
        previous: Router[T] | None = None,
        unchanged: Container[str] = (),
    ) -> None:
        for _ in self._fill(routes, previous, unchanged):
            pass

    @classmethod
    def build(
        cls,
        routes: Sequence[tuple[Mapping[str, Any], T]],
        *,
        previous: Router[T] | None = None,
        unchanged: Container[str] = (),
    ) -> Generator[None, None, Router[T]]:
        """Build a router a slice at a time: it yields every few routes.

        A router that :func:`prepare` built ahead for these very route
        entities is taken as it is: its entries only get their targets.
        """
        whole = _PREPARED_WHOLE.pop() if _PREPARED_WHOLE else None
        if whole is not None and len(whole[0]) == len(routes):
            prepared_routes, router = whole
            filed = router._filed
            for position, (route, target) in enumerate(routes):
                if position % STEP == STEP - 1:
                    yield
                if prepared_routes[position] is not route:
                    break  # not built for these routes: the targets set are moot
                for entry in filed[str(route.get("id") or "")].entries:
                    entry.target = target
                    entry.found.target = target
            else:
                _PREPARED.clear()
                return router
        router = cls(())
        yield from router._fill(routes, previous, unchanged)
        return router

    def _fill(
        self,
        routes: Sequence[tuple[Mapping[str, Any], T]],
        previous: Router[T] | None,
        unchanged: Container[str],
    ) -> Iterator[None]:
        self.candidate_checks = 0  # entries examined, for tests and benchmarks
        self._filed: dict[str, _Filing[T]] = {}
        old = previous._filed if previous is not None else {}

        # File every route, reusing the entries of unchanged ones; note, per
        # shelf, the entries that leave it and those that join it.
        changes: dict[_ShelfKey, tuple[list[_Entry[T]], list[_Entry[T]]]] = {}
        for position, (route, target) in enumerate(routes):
            if position % STEP == STEP - 1:
                yield
            route_id = str(route.get("id") or "")
            filing = old.get(route_id) if route_id in unchanged else None
            if filing is None:
                filing = _prepared(route, target) or _file(route, target)
                for key in filing.shelves:
                    changes.setdefault(key, ([], []))[1].extend(filing.entries)
                replaced = old.get(route_id)
                if replaced is not None:
                    for key in replaced.shelves:
                        changes.setdefault(key, ([], []))[0].extend(replaced.entries)
            self._filed[route_id] = filing
        for position, (route_id, filing) in enumerate(old.items()):
            if position % STEP == STEP - 1:
                yield
            if route_id not in self._filed:
                for key in filing.shelves:
                    changes.setdefault(key, ([], []))[0].extend(filing.entries)

        # Share the untouched shelves. A touched shelf is derived from the
        # previous one when few of its entries changed, built anew otherwise.
        self._plain: dict[str, _Shelf[T]] = {}
        self._suffix: dict[str, _Shelf[T]] = {}  # "*.example.com" under ".example.com"
        self._prefix: dict[str, _Shelf[T]] = {}  # "example.*" under "example."
        self._hostless: _Shelf[T] = _Shelf()
        by_kind = (self._plain, self._suffix, self._prefix)
        rebuilt: set[_ShelfKey] = set()
        if previous is None:
            rebuilt = {key for filing in self._filed.values() for key in filing.shelves}
            rebuilt.add(_HOSTLESS)
        else:
            self._plain.update(previous._plain)
            self._suffix.update(previous._suffix)
            self._prefix.update(previous._prefix)
            self._hostless = previous._hostless
            yield
            for position, (key, (removed, added)) in enumerate(changes.items()):
                if position % STEP == STEP - 1:
                    yield
                kind, name = key
                before = (
                    previous._hostless if kind == _NO_HOST else by_kind[kind].get(name)
                )
                if before is None or len(removed) + len(added) > DERIVE_LIMIT:
                    rebuilt.add(key)
                    if kind == _NO_HOST:
                        self._hostless = _Shelf()
                    else:
                        by_kind[kind].pop(name, None)
                    continue
                shelf = before.derived(removed, added)
                if kind == _NO_HOST:
                    self._hostless = shelf
                elif added or not shelf.is_empty():
                    by_kind[kind][name] = shelf
                else:
                    del by_kind[kind][name]
        if rebuilt:
            fresh: dict[_ShelfKey, _Shelf[T]] = {}
            if _HOSTLESS in rebuilt:
                fresh[_HOSTLESS] = self._hostless
            for position, filing in enumerate(self._filed.values()):
                if position % STEP == STEP - 1:
                    yield
                for key in filing.shelves:
                    if key not in rebuilt:
                        continue
                    building = fresh.get(key)
                    if building is None:
                        building = fresh[key] = _Shelf()
                        by_kind[key[0]][key[1]] = building
                    for entry in filing.entries:
                        building.add(entry)
            for position, shelf in enumerate(fresh.values()):
                if position % STEP == STEP - 1:
                    yield
                yield from shelf.seal()
        self._hostless_only = (self._hostless,)
        _PREPARED.clear()  # what this build did not take is stale now

    def parts(self) -> list[object]:
        """Return the pieces that hold most of this router's memory.

        For a caller that frees a router a little at a time: with these
        referenced elsewhere, dropping the router frees only its index.
        """
        return list(self._filed.values())

    def _shelves_for(self, host: str) -> Sequence[_Shelf[T]]:
        """Return the shelves whose host pattern matches `host`."""
        plain = self._plain.get(host)
        if not (self._suffix or self._prefix):
            return self._hostless_only if plain is None else (plain, self._hostless)
        shelves = [] if plain is None else [plain]
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
        found: RouteMatch[T] | None = None
        shelves = self._shelves_for(host) if host else self._hostless_only
        segments = path[1:].split("/")
        last = len(segments) - 1
        for shelf in shelves:
            # Entries filed by path: walk the trie, deeper nodes hold longer
            # prefixes; a regex found on the way must still match.
            node: _Node[T] | None = shelf.trie
            depth = 0
            while node is not None:
                segment = segments[depth]
                for length in node.tail_lengths:
                    if length > len(segment):
                        break
                    for candidate in node.tails.get(segment[:length], ()):
                        if best is not None and candidate.key >= best.key:
                            break
                        self.candidate_checks += 1
                        if not (
                            candidate.unconditional
                            or candidate.accepts(method, headers)
                        ):
                            continue
                        regex = candidate.regex
                        if regex is None:
                            best, found = candidate, candidate.found
                            break
                        hit = regex.match(path)
                        if hit is not None:
                            best = candidate
                            found = RouteMatch(candidate.target, hit.end(), hit)
                            break
                if depth == last:
                    break
                node = node.children.get(segment)
                depth += 1
            for candidate in shelf.pathless:
                if best is not None and candidate.key >= best.key:
                    break
                self.candidate_checks += 1
                if candidate.unconditional or candidate.accepts(method, headers):
                    best, found = candidate, candidate.found
                    break
            for candidate in shelf.regexes:
                if best is not None and candidate.key >= best.key:
                    break
                self.candidate_checks += 1
                if candidate.unconditional or candidate.accepts(method, headers):
                    assert candidate.regex is not None, "regex entry without pattern"
                    hit = candidate.regex.match(path)
                    if hit is not None:
                        best = candidate
                        found = RouteMatch(candidate.target, hit.end(), hit)
                        break
        return found


def _file(route: Mapping[str, Any], target: T) -> _Filing[T]:
    """Return one entry per path of `route` and the shelves of its hosts."""
    hosts = [h.lower() for h in route.get("hosts") or ()]
    methods = route.get("methods") or None
    headers = _compile_headers(route) if route.get("headers") else ()
    paths = route.get("paths") or ()
    bits = (
        (_HOST if hosts else 0)
        | (_HEADER if headers else 0)
        | (_URI if paths else 0)
        | (_METHOD if methods else 0)
        | (_SNI if route.get("snis") else 0)
    )
    wildcard = 1 if hosts and any("*" in h for h in hosts) else 0
    created_at = int(route.get("created_at") or 0)
    route_id = str(route.get("id") or "")
    regex_priority = int(route.get("regex_priority") or 0)
    method_set = frozenset(m.upper() for m in methods) if methods else None
    head = (-bin(bits).count("1"), -bits, wildcard, -len(headers))

    entries: list[_Entry[T]] = []
    for path in paths:
        if path.startswith("~"):
            key = (*head, 0, -regex_priority, created_at, route_id)
            pattern, literal = _compile(path, route_id)
            entries.append(_Entry(target, key, method_set, headers, literal, pattern))
        else:
            key = (*head, 1, -len(path), created_at, route_id)
            entries.append(_Entry(target, key, method_set, headers, path, None))
    if not paths:
        if not (hosts or methods or headers):
            return _Filing([], [])  # an SNI-only route never matches plain HTTP
        key = (*head, 1, 0, created_at, route_id)
        entries.append(_Entry(target, key, method_set, headers, None, None))
    return _Filing(entries, [_shelf_key(host) for host in hosts] or [_HOSTLESS])


def prepare(routes: Iterable[Mapping[str, Any]], *, whole: bool = False) -> None:
    """File `routes` ahead of the router's build, regex paths compiled.

    For the thread that reads or decodes a config before it is applied:
    the build, a slice at a time on the event loop, then takes the entries
    made here for the very same route entities and only gives them their
    targets. With `whole`, `routes` are all the config's routes and the
    router itself is built here, shelves sorted. A route that cannot be
    filed (a bad regex) is left for the build to report.
    """
    routes = list(routes)
    _PREPARED_WHOLE.clear()
    if whole:
        try:
            router: Router[Any] = Router([(route, None) for route in routes])
        except ValidationError:
            return
        _PREPARED_WHOLE.append((routes, router))
        return
    prepared: dict[str, tuple[Mapping[str, Any], _Filing[Any]]] = {}
    for route in routes:
        try:
            prepared[str(route.get("id") or "")] = (route, _file(route, None))
        except ValidationError:
            pass
    _PREPARED.clear()
    _PREPARED.update(prepared)


def _prepared(route: Mapping[str, Any], target: T) -> _Filing[T] | None:
    """Return the filing `prepare` made for `route`, given `target`, if any."""
    found = _PREPARED.pop(str(route.get("id") or ""), None)
    if found is None or found[0] is not route:
        return None
    filing: _Filing[T] = found[1]
    for entry in filing.entries:
        entry.target = target
        entry.found.target = target
    return filing


def _shelf_key(host: str) -> _ShelfKey:
    """Return where the entries of a route with `host` are filed."""
    if host.startswith("*."):
        return _SUFFIX, host[1:]
    if host.endswith(".*"):
        return _PREFIX, host[:-1]
    return _PLAIN, host


def _compile(path: str, route_id: str) -> tuple[re.Pattern[str], str]:
    """Return the regex of a `~` path and its literal start, cached by path."""
    compiled = _PATTERNS.get(path)
    if compiled is None:
        try:
            pattern = compile_path_regex(path)
        except re.error as exc:
            raise ValidationError(f"route {route_id}: bad regex path") from exc
        if len(_PATTERNS) >= _PATTERNS_LIMIT:
            _PATTERNS.clear()
        compiled = _PATTERNS[path] = (pattern, _literal_start(path[1:]))
    return compiled


# Characters with a meaning in a regex; any other character stands for itself.
_SPECIAL = frozenset(".^$*+?{}[]|()\\")


def _literal_start(source: str) -> str:
    """Return the text every match of the regex `source` begins with.

    It is read conservatively: the scan stops at the first construct that is
    not one fixed character (a class, a group, an escape like `\\d`), and a
    character made optional by the quantifier after it is left out. A
    top-level `|` lets each branch begin differently: nothing is fixed then.
    The result is only used when it starts with `/`, as every path does.
    """
    if _has_top_level_bar(source):
        return ""
    if source.startswith("^"):
        source = source[1:]  # matches are anchored at the start anyway
    literal: list[str] = []
    position = 0
    while position < len(source):
        char = source[position]
        step = 1
        if char == "\\":
            char = source[position + 1 : position + 2]
            if not char or char.isalnum() or char.isspace():
                break  # \d, \b, \1 ...: not one fixed character
            step = 2
        elif char in _SPECIAL:
            break
        following = source[position + step : position + step + 1]
        if following in ("*", "?", "{"):
            break  # the character may be absent
        literal.append(char)
        if following == "+":
            break  # present, but what follows it is not fixed
        position += step
    text = "".join(literal)
    return text if text.startswith("/") else ""


def _has_top_level_bar(source: str) -> bool:
    """Tell whether `source` has an alternation outside any group."""
    depth = 0
    position = 0
    in_class = False
    while position < len(source):
        char = source[position]
        if char == "\\":
            position += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A "]" first in a class (after an optional "^") is a member.
            if source[position + 1 : position + 2] == "^":
                position += 1
            if source[position + 1 : position + 2] == "]":
                position += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        position += 1
    return False


def _compile_headers(route: Mapping[str, Any]) -> _Headers:
    """Return (lowercase name, lowercase values, regex) per route header."""
    compiled = []
    for name, values in sorted((route.get("headers") or {}).items()):
        values = [values] if isinstance(values, str) else list(values)
        pattern = None
        if len(values) == 1 and values[0].startswith("~*"):
            try:
                pattern = re.compile(values[0][2:], re.IGNORECASE)
            except re.error as exc:
                raise ValidationError(
                    f"route {route.get('id')}: bad regex in header {name}: {exc}"
                ) from exc
        compiled.append((name.lower(), frozenset(v.lower() for v in values), pattern))
    return tuple(compiled)
