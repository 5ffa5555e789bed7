"""Run the rate-limiting plugin the way Kong does, with counters per window.

Each limit counts requests in a fixed window aligned like Kong's: the
second, minute, hour and day start on their UTC boundary, the month on the
first of the month and the year on January 1st (UTC). A request is refused
when a count has reached its limit; it is counted otherwise.

Counters belong to the plugin's scope (its route and service, as Kong keys
them), the identifier `limit_by` names, and the period and window:

- `local`: in the node's memory, kept across config versions;
- `redis`: in Redis, shared by every node using it, one pipeline of
  INCRBY and EXPIRE per request (the count is taken as it is raised, so a
  refused request is counted too: the answer is the same as Kong's). It
  is exact across nodes and their workers.

The client sees Kong's `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (for the limit closest to being reached), one
`X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>` per limit,
and `Retry-After` on a refusal, unless `hide_client_headers` is set.
`sync_rate` is not used: the `redis` policy always counts in Redis.

With ``--workers N`` the `local` counts are the node's, as Kong's shared
dict makes them, but not exact. Each worker counts in its own memory,
sends the node its own count of each window it counted in
`SYNC_INTERVAL` (50 ms) after its first new count (:class:`NodeTotals`
adds them up), and hears back the node-wide totals of the windows that
changed, with each worker's share. A worker decides with its own count,
exact, plus the other workers' counts as last heard, which lag by at most
one interval and the time a message takes. So a node admits at most the
limit plus what its other workers admitted within that lag, and never
more than N times the limit (each worker alone stops at it); requests
that come one interval (and a message) apart get exactly the limit, and
a node never refuses before the limit is reached. An exact shared counter
would need memory every worker changes atomically, which Python offers
only with a lock or a message per request, either of which costs the
proxy more than counting does. A worker that exits loses what it counted
since its last report; the one that replaces it starts from the node's
totals. With one process nothing is sent.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)

logger = logging.getLogger(__name__)

PRIORITY: Final = 910
PERIODS: Final = ("second", "minute", "hour", "day", "month", "year")
# Kong's window lengths in seconds (kong/plugins/rate-limiting/expiration).
WINDOWS: Final = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 2592000,
    "year": 31536000,
}
_EMPTY_UUID: Final = "00000000-0000-0000-0000-000000000000"
_ERROR: Final = LocalResponse.message(500, "An unexpected error occurred")
_SWEEP_EVERY: Final = 60.0  # seconds between sweeps of the ended local windows
_WARN_EVERY: Final = 10.0  # seconds between warnings about an unreachable Redis
# Seconds from a worker's first new count to its report to the node.
SYNC_INTERVAL: Final = 0.05

# (route id, service id, identifier, period) -> [window start, count,
# others]: the count decides and includes `others`, the other workers'
# counts as last heard (0 in a process that counts alone).
_Key = tuple[str, str, str, str]
_COUNTERS: Final[dict[_Key, list[int]]] = {}
# With workers: the keys counted since the last report (a report is due
# while it is not empty), what sends one, and this worker's place in the
# node's shares. None while the process counts alone.
_touched: set[_Key] | None = None
_report: Callable[[list[list[Any]]], None] | None = None
_slot = 0
_CACHED_KEYS: Final = 10_000  # identifiers whose counter keys a plugin keeps
_next_sweep = 0.0
_last_warning = 0.0
_CLIENTS: Final[dict[tuple[Any, ...], aioredis.Redis]] = {}


# The second window_starts last answered for, and its answer.
_last_second = -1
_last_starts: dict[str, int] = {}


@lru_cache(maxsize=8)
def _month_and_year(day: int) -> tuple[int, int]:
    """Return the starts of the UTC month and year the day starting at `day` is in."""
    moment = time.gmtime(day)
    month = calendar.timegm((moment.tm_year, moment.tm_mon, 1, 0, 0, 0))
    year = calendar.timegm((moment.tm_year, 1, 1, 0, 0, 0))
    return month, year


def window_starts(now: float) -> dict[str, int]:
    """Return the start of each period's window at `now`, in UTC seconds.

    Every request of one second shares the answer; callers must not
    change it.
    """
    global _last_second, _last_starts
    second = int(now)
    if second != _last_second:
        _last_second, _last_starts = second, _starts(second)
    return _last_starts


def _starts(second: int) -> dict[str, int]:
    day = second - second % 86400
    month, year = _month_and_year(day)
    return {
        "second": second,
        "minute": second - second % 60,
        "hour": second - second % 3600,
        "day": day,
        "month": month,
        "year": year,
    }


def _sweep(now: float) -> None:
    """Forget the local counters of windows that have ended."""
    global _next_sweep
    _next_sweep = now + _SWEEP_EVERY
    ended = [
        key for key, entry in _COUNTERS.items() if entry[0] + WINDOWS[key[3]] <= now
    ]
    for key in ended:
        del _COUNTERS[key]


def _warn(message: str, *args: object) -> None:
    """Log a warning about Redis, at most once every few seconds."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY:
        _last_warning = now
        logger.warning(message, *args)


class RateLimiting:
    """One rate-limiting plugin entity, compiled."""

    name = "rate-limiting"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        route, service = index.scope
        self._route = route or _EMPTY_UUID
        self._service = service or _EMPTY_UUID
        self._limits = tuple(
            (period, int(config[period])) for period in PERIODS if config.get(period)
        )
        # The counting headers, encoded once but for their numbers.
        self._lines = tuple(
            (
                f"X-RateLimit-Limit-{period.capitalize()}: {limit}\r\n".encode(),
                f"X-RateLimit-Remaining-{period.capitalize()}: ".encode(),
            )
            for period, limit in self._limits
        )
        names = {b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset"}
        for period, _ in self._limits:
            names.add(f"x-ratelimit-limit-{period}".encode())
            names.add(f"x-ratelimit-remaining-{period}".encode())
        self._names = frozenset(names)
        # One limit, the common case: its passed request's headers are one
        # format away (remaining twice, then the reset).
        self._one: tuple[str, int, bytes] | None = None
        if len(self._limits) == 1:
            period, limit = self._limits[0]
            title = period.capitalize()
            block = (
                f"X-RateLimit-Limit-{title}: {limit}\r\n"
                f"X-RateLimit-Remaining-{title}: %d\r\n"
                f"RateLimit-Limit: {limit}\r\n"
                "RateLimit-Remaining: %d\r\nRateLimit-Reset: %d\r\n"
            )
            self._one = (period, limit, block.encode())
        self._keys: dict[str, tuple[tuple[_Key, str], ...]] = {}
        self._limit_by = str(config.get("limit_by") or "consumer")
        self._header = str(config.get("header_name") or "").lower()
        self._path = config.get("path")
        self._hide = bool(config.get("hide_client_headers"))
        self._fault_tolerant = config.get("fault_tolerant") is not False
        self._error = LocalResponse.message(
            int(config.get("error_code") or 429),
            str(config.get("error_message") or "API rate limit exceeded"),
        )
        self._redis: tuple[Any, ...] | None = None
        if config.get("policy") == "redis":
            redis = config.get("redis") or {}
            self._redis = (
                str(redis.get("host")),
                int(redis.get("port") or 6379),
                int(redis.get("database") or 0),
                redis.get("username"),
                redis.get("password"),
                bool(redis.get("ssl")),
                bool(redis.get("ssl_verify")),
                (redis.get("timeout") or 2000) / 1000,
            )
        self._services: dict[str, str | None] = {}
        if self._limit_by == "service":
            self._services = index.table("rate-limiting:route-services")
            if not self._services:
                for entity in index.config.get("routes") or ():
                    ref = entity.get("service")
                    if isinstance(ref, Mapping):
                        ref = ref.get("id")
                    self._services[str(entity.get("id"))] = str(ref) if ref else None

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Count the request, or refuse it when a limit is reached."""
        now = time.time()
        identifier = self._identifier(ctx)
        if self._redis is not None:
            loop = asyncio.get_running_loop()
            return loop.create_task(self._count_in_redis(ctx, identifier, now))
        if now >= _next_sweep:
            _sweep(now)
        starts = window_starts(now)
        keys = self._keys.get(identifier)
        if keys is None:
            keys = self._keys_of(identifier)
        one = self._one
        if one is not None and not self._hide:
            # One limit, the common case: a request that passes is counted
            # and given its headers right here; a refusal goes the long way.
            start = starts[one[0]]
            entry = _COUNTERS.get(keys[0][0])
            if entry is None or entry[0] != start:
                entry = _COUNTERS[keys[0][0]] = [start, 0, 0]
            remaining = one[1] - entry[1] - 1
            if remaining >= 0:
                entry[1] += 1
                if _touched is not None:
                    _touch(keys)
                self._pass_one(ctx, remaining, now, start)
                return None
        entries = []
        for key, period in keys:
            start = starts[period]
            entry = _COUNTERS.get(key)
            if entry is None or entry[0] != start:
                entry = _COUNTERS[key] = [start, 0, 0]
            entries.append(entry)
        answer = self._decide(ctx, [entry[1] for entry in entries], now, starts)
        if answer is None:
            for entry in entries:
                entry[1] += 1
            if _touched is not None:
                _touch(keys)
        return answer

    def _keys_of(self, identifier: str) -> tuple[tuple[_Key, str], ...]:
        """Return the counter keys of one identifier, made once."""
        keys = tuple(
            ((self._route, self._service, identifier, period), period)
            for period, _ in self._limits
        )
        if len(self._keys) >= _CACHED_KEYS:
            self._keys.clear()
        self._keys[identifier] = keys
        return keys

    def header_filter(
        self, ctx: RequestContext, status: int, headers: list[bytes]
    ) -> HeaderRewrite | None:
        """Leave the head to the headers chosen in the access phase."""
        return None

    def _identifier(self, ctx: RequestContext) -> str:
        """Return whom the request is counted for (Kong's get_identifier)."""
        found: Any = None
        limit_by = self._limit_by
        if limit_by == "consumer":
            found = (ctx.consumer or ctx.credential or {}).get("id")
        elif limit_by == "credential":
            found = (ctx.credential or {}).get("id")
        elif limit_by == "service":
            found = self._services.get(ctx.route_id)
        elif limit_by == "header":
            found = ctx.headers.get(self._header)
        elif limit_by == "path" and ctx.path == self._path:
            found = ctx.path
        return str(found) if found else ctx.client_ip

    def _decide(
        self,
        ctx: RequestContext,
        usage: list[int],
        now: float,
        starts: Mapping[str, int],
    ) -> LocalResponse | None:
        """Return the refusal when a limit is reached; choose the headers."""
        stop = None
        for (period, limit), used in zip(self._limits, usage, strict=True):
            if limit - used <= 0:
                stop = period
        if self._hide:
            return self._error if stop is not None else None

        remainders = []
        best: tuple[int, int, int] | None = None  # remaining, window, limit
        reset = 1
        for (period, limit), used in zip(self._limits, usage, strict=True):
            remaining = limit - used
            if stop is None or stop == period:
                remaining -= 1
            if remaining < 0:
                remaining = 0
            remainders.append(remaining)
            window = WINDOWS[period]
            if (
                best is None
                or remaining < best[0]
                or (remaining == best[0] and window > best[1])
            ):
                best = (remaining, window, limit)
                reset = max(1, window - math.floor(now - starts[period]))
        assert best is not None, "a rate-limiting plugin without limits"
        if stop is None:
            ctx.rewrite_downstream(self._counted(remainders, best, reset))
            return None
        headers: list[tuple[str, str]] = []
        for (period, limit), remaining in zip(self._limits, remainders, strict=True):
            title = period.capitalize()
            headers.append((f"X-RateLimit-Limit-{title}", str(limit)))
            headers.append((f"X-RateLimit-Remaining-{title}", str(remaining)))
        headers += (
            ("RateLimit-Limit", str(best[2])),
            ("RateLimit-Remaining", str(best[0])),
            ("RateLimit-Reset", str(reset)),
            ("Retry-After", str(reset)),
        )
        error = self._error
        return LocalResponse(error.status, error.body, tuple(headers))

    def _pass_one(
        self, ctx: RequestContext, remaining: int, now: float, start: int
    ) -> None:
        """Set the headers of a request passed under the only limit.

        They are the ones `_decide` would set, in one format.
        """
        assert self._one is not None, "one limit's headers without one limit"
        period, _, block = self._one
        reset = WINDOWS[period] - int(now - start)
        block %= (remaining, remaining, reset if reset > 1 else 1)
        ctx.rewrite_downstream(HeaderRewrite(self._names, block, self._names))

    def _counted(
        self, remainders: list[int], best: tuple[int, int, int], reset: int
    ) -> HeaderRewrite:
        """Return the rewrite setting the counting headers of a passed request."""
        parts: list[bytes] = []
        for (limit_line, prefix), remaining in zip(
            self._lines, remainders, strict=True
        ):
            parts += (limit_line, prefix, b"%d\r\n" % remaining)
        parts.append(
            b"RateLimit-Limit: %d\r\nRateLimit-Remaining: %d\r\nRateLimit-Reset: %d\r\n"
            % (best[2], best[0], reset)
        )
        return HeaderRewrite(self._names, b"".join(parts), self._names)

    async def _count_in_redis(
        self, ctx: RequestContext, identifier: str, now: float
    ) -> LocalResponse | None:
        """Count the request in Redis and decide; without Redis, let it pass."""
        assert self._redis is not None, "redis counting without redis settings"
        starts = window_starts(now)
        try:
            client = _client(self._redis)
            async with client.pipeline(transaction=False) as pipe:
                for period, _ in self._limits:
                    key = (
                        f"ratelimit:{self._route}:{self._service}:{identifier}:"
                        f"{starts[period] * 1000}:{period}"
                    )
                    pipe.incrby(key, 1)
                    pipe.expire(key, WINDOWS[period])
                replies = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            _warn("rate-limiting: redis unreachable: %s", exc)
            return None if self._fault_tolerant else _ERROR
        usage = [int(count) - 1 for count in replies[::2]]
        return self._decide(ctx, usage, now, starts)


def _client(settings: tuple[Any, ...]) -> aioredis.Redis:
    """Return the Redis client for these settings, shared by every config."""
    client = _CLIENTS.get(settings)
    if client is None:
        host, port, database, username, password, ssl, verify, timeout = settings
        client = _CLIENTS[settings] = aioredis.Redis(
            host=host,
            port=port,
            db=database,
            username=username,
            password=password,
            ssl=ssl,
            ssl_cert_reqs="required" if verify else "none",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A request waits for one attempt, as in Kong: retries with
            # backoff would hold every request while Redis is down.
            retry=Retry(NoBackoff(), 0),
        )
    return client


# Counting node-wide with workers


def share_counts(slot: int, report: Callable[[list[list[Any]]], None]) -> None:
    """Count node-wide as the worker in `slot`, sending own counts to `report`.

    `report` receives rows of ``[route, service, identifier, period, window
    start, count]``: this worker's own count of each window it counted in
    since its last report.
    """
    global _touched, _report, _slot
    _touched, _report, _slot = set(), report, slot


def _touch(keys: tuple[tuple[_Key, str], ...]) -> None:
    """Note the keys just counted; the first since a report makes one due."""
    assert _touched is not None, "counts noted in a process that counts alone"
    if not _touched:
        asyncio.get_running_loop().call_later(SYNC_INTERVAL, _send_counts)
    _touched.update([key for key, _ in keys])


def _send_counts() -> None:
    """Report this worker's own counts of the keys counted since the last one."""
    global _touched
    touched, _touched = _touched, set()
    assert touched is not None and _report is not None, "a report while alone"
    rows: list[list[Any]] = []
    for key in touched:
        entry = _COUNTERS.get(key)
        if entry is not None:
            rows.append([*key, entry[0], entry[1] - entry[2]])
    if rows:
        _report(rows)


def hear_counts(rows: Iterable[Sequence[Any]]) -> None:
    """Take the node-wide totals of some windows, as :class:`NodeTotals` rows."""
    now = time.time()
    if now >= _next_sweep:
        _sweep(now)
    for route, service, identifier, period, start, total, shares in rows:
        others = total - shares[_slot]
        key = (route, service, identifier, period)
        entry = _COUNTERS.get(key)
        if entry is None or entry[0] < start:
            if start + WINDOWS[period] > now:
                _COUNTERS[key] = [start, others, others]
        elif entry[0] == start:
            entry[1] += others - entry[2]
            entry[2] = others


class NodeTotals:
    """Add up the `local` counts of a node's workers, window by window.

    Each worker (named by a key that no later worker reuses) reports its
    own count of a window; the node keeps every worker's latest and their
    sum, the total. A worker that exits leaves its counts in the totals.
    Answers are rows of ``[route, service, identifier, period, window
    start, total, shares]``, `shares` being the count of the worker in each
    slot, so that one row serves every worker: each takes its own share out
    of the total. The same rows sent twice change nothing.
    """

    def __init__(self) -> None:
        # key -> [window start, total, {worker: its count}]
        self._windows: dict[_Key, list[Any]] = {}
        self._changed: set[_Key] = set()
        self._next_sweep = 0.0

    def add(self, worker: Hashable, rows: Iterable[Sequence[Any]]) -> None:
        """Take a worker's report of its own counts."""
        now = time.time()
        if now >= self._next_sweep:
            self._sweep(now)
        for route, service, identifier, period, start, count in rows:
            key = (route, service, identifier, period)
            window = self._windows.get(key)
            if window is None or window[0] < start:
                if start + WINDOWS[period] <= now:
                    continue
                window = self._windows[key] = [start, 0, {}]
            elif window[0] > start:
                continue  # a report about a window that has ended since
            counts = window[2]
            window[1] += count - counts.get(worker, 0)
            counts[worker] = count
            self._changed.add(key)

    def changed(self, slots: Sequence[Hashable | None]) -> list[list[Any]]:
        """Return the rows of the windows changed since the last call."""
        changed, self._changed = self._changed, set()
        windows = self._windows
        return [
            self._row(key, windows[key], slots) for key in changed if key in windows
        ]

    def current(self, slots: Sequence[Hashable | None]) -> list[list[Any]]:
        """Return the rows of every window not ended, for a worker that starts."""
        now = time.time()
        return [
            self._row(key, window, slots)
            for key, window in self._windows.items()
            if window[0] + WINDOWS[key[3]] > now
        ]

    @staticmethod
    def _row(
        key: _Key, window: list[Any], slots: Sequence[Hashable | None]
    ) -> list[Any]:
        counts = window[2]
        # An empty slot (None) has no counts.
        shares = [counts.get(worker, 0) for worker in slots]
        return [*key, window[0], window[1], shares]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        ended = [
            key
            for key, window in self._windows.items()
            if window[0] + WINDOWS[key[3]] <= now
        ]
        for key in ended:
            del self._windows[key]
