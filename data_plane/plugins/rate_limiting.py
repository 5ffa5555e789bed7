"""Run the rate-limiting plugin the way Kong does, with counters per window.

Each limit counts requests in a fixed window aligned like Kong's: the
second, minute, hour and day start on their UTC boundary, the month on the
first of the month and the year on January 1st (UTC). A request is refused
when a count has reached its limit; it is counted otherwise.

Counters belong to the plugin's scope (its route and service, as Kong keys
them), the identifier `limit_by` names, and the period and window:

- `local`: in this process, kept across config versions;
- `redis`: in Redis, shared by every node using it, one pipeline of
  INCRBY and EXPIRE per request (the count is taken as it is raised, so a
  refused request is counted too: the answer is the same as Kong's).

The client sees Kong's `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (for the limit closest to being reached), one
`X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>` per limit,
and `Retry-After` on a refusal, unless `hide_client_headers` is set.
`sync_rate` is not used: the `redis` policy always counts in Redis.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

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

PRIORITY = 910
PERIODS = ("second", "minute", "hour", "day", "month", "year")
# Kong's window lengths in seconds (kong/plugins/rate-limiting/expiration).
WINDOWS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 2592000,
    "year": 31536000,
}
_EMPTY_UUID = "00000000-0000-0000-0000-000000000000"
_ERROR = LocalResponse.message(500, "An unexpected error occurred")
_SWEEP_EVERY = 60.0  # seconds between sweeps of the ended local windows
_WARN_EVERY = 10.0  # seconds between warnings about an unreachable Redis

# (route id, service id, identifier, period) -> [window start, count]
_Key = tuple[str, str, str, str]
_COUNTERS: dict[_Key, list[int]] = {}
_CACHED_KEYS = 10_000  # identifiers whose counter keys a plugin keeps
_next_sweep = 0.0
_last_warning = 0.0
_CLIENTS: dict[tuple[Any, ...], aioredis.Redis] = {}


@lru_cache(maxsize=8)
def _month_and_year(day: int) -> tuple[int, int]:
    """Return the starts of the UTC month and year the day starting at `day` is in."""
    moment = time.gmtime(day)
    month = calendar.timegm((moment.tm_year, moment.tm_mon, 1, 0, 0, 0))
    year = calendar.timegm((moment.tm_year, 1, 1, 0, 0, 0))
    return month, year


def window_starts(now: float) -> dict[str, int]:
    """Return the start of each period's window at `now`, in UTC seconds."""
    return _starts(int(now))


@lru_cache(maxsize=4)
def _starts(second: int) -> dict[str, int]:
    # Every request of one second shares the answer; callers must not change it.
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
        key for key, (start, _) in _COUNTERS.items() if start + WINDOWS[key[3]] <= now
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
                (
                    f"x-ratelimit-limit-{period}".encode(),
                    f"X-RateLimit-Limit-{period.capitalize()}: {limit}\r\n".encode(),
                ),
                f"x-ratelimit-remaining-{period}".encode(),
                f"X-RateLimit-Remaining-{period.capitalize()}: ".encode(),
            )
            for period, limit in self._limits
        )
        names = [b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset"]
        for (limit_name, _), remaining_name, _ in self._lines:
            names += (limit_name, remaining_name)
        self._names = frozenset(names)
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
        entries = []
        for key, period in keys:
            start = starts[period]
            entry = _COUNTERS.get(key)
            if entry is None or entry[0] != start:
                entry = _COUNTERS[key] = [start, 0]
            entries.append(entry)
        answer = self._decide(ctx, [entry[1] for entry in entries], now, starts)
        if answer is None:
            for entry in entries:
                entry[1] += 1
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

    def _counted(
        self, remainders: list[int], best: tuple[int, int, int], reset: int
    ) -> HeaderRewrite:
        """Return the rewrite setting the counting headers of a passed request."""
        lines: list[tuple[bytes, bytes]] = []
        for (limit_line, name, prefix), remaining in zip(
            self._lines, remainders, strict=True
        ):
            lines += (limit_line, (name, b"%s%d\r\n" % (prefix, remaining)))
        lines += (
            (b"ratelimit-limit", b"RateLimit-Limit: %d\r\n" % best[2]),
            (b"ratelimit-remaining", b"RateLimit-Remaining: %d\r\n" % best[0]),
            (b"ratelimit-reset", b"RateLimit-Reset: %d\r\n" % reset),
        )
        block = b"".join([line for _, line in lines])
        return HeaderRewrite(tuple(lines), self._names, block)

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
