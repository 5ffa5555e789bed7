"""Run the acl plugin the way Kong does: allow or deny consumers by group.

A consumer's groups are its `acls` entities. With `allow`, a consumer in
none of the groups is refused; with `deny`, one in any of them is, both with
403 "You cannot consume this service". A request no authentication plugin
identified gets 401 "Unauthorized", and so does the anonymous consumer when
it has no group and `allow` is set. A consumer let through is named to the
upstream with its groups in `X-Consumer-Groups` ("a, b"), unless
`hide_groups_header` is set.

What a consumer gets is decided the first time it comes, and kept for the
life of the config: a request costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from data_plane.plugins.base import (
    ConfigIndex,
    Deferred,
    HeaderRewrite,
    LocalResponse,
    RequestContext,
)

PRIORITY: Final = 950

_HEADER = "X-Consumer-Groups"
_FORBIDDEN = LocalResponse.message(403, "You cannot consume this service")
_UNAUTHORIZED = LocalResponse.message(401, "Unauthorized")


def groups(index: ConfigIndex) -> dict[str, tuple[str, ...]]:
    """Return each consumer's ACL groups by consumer id, built once per config."""
    table: dict[str, tuple[str, ...]] = index.table("acl groups")
    acls = index.config.get("acls") or ()
    if not table and acls:
        lists: dict[str, list[str]] = {}
        for acl in acls:
            consumer = str((acl.get("consumer") or {}).get("id"))
            lists.setdefault(consumer, []).append(str(acl["group"]))
        table.update((consumer, tuple(names)) for consumer, names in lists.items())
    return table


class Acl:
    """One acl plugin entity, compiled."""

    name = "acl"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        self._groups = groups(index)
        self._deny = bool(config.get("deny"))
        self._listed = frozenset(config.get("deny") or config.get("allow") or ())
        self._hide = bool(config.get("hide_groups_header"))
        self._hidden = HeaderRewrite.of(((_HEADER, None),))
        # (consumer id, authenticated with a credential) -> answer or rewrite.
        self._decided: dict[tuple[str, bool], LocalResponse | HeaderRewrite] = {}

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Let the consumer through, or answer 401 or 403."""
        consumer = ctx.consumer
        if consumer is None:
            return _UNAUTHORIZED
        key = (str(consumer["id"]), ctx.credential is not None)
        decided = self._decided.get(key)
        if decided is None:
            decided = self._decided[key] = self._decide(*key)
        if isinstance(decided, LocalResponse):
            return decided
        ctx.rewrite_upstream(decided)
        return None

    def _decide(
        self, consumer_id: str, credential: bool
    ) -> LocalResponse | HeaderRewrite:
        """Return what a consumer gets: a refusal, or its upstream header."""
        names = self._groups.get(consumer_id, ())
        if not names and not self._deny:
            # Kong: an authenticated consumer is told it may not come in; a
            # request let through anonymously is told to authenticate.
            return _FORBIDDEN if credential else _UNAUTHORIZED
        listed = not self._listed.isdisjoint(names)
        if listed == self._deny:
            return _FORBIDDEN
        if self._hide or not names:
            return self._hidden
        return HeaderRewrite.of(((_HEADER, ", ".join(names)),))
