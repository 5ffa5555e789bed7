"""Admin API tokens and the roles they carry.

Tokens look like Konnect's: `kpat_…` for a person, `spat_…` for a system
account. Only their SHA-256 digest is stored; the token itself is shown once,
when it is created. A token carries one role:

- organisation admin: every call;
- runtime group admin: reads everything, changes only the groups it is scoped
  to, and composites whose members are all among them;
- viewer: reads only.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from control_plane.config_cache import now_iso
from control_plane.problems import Problem
from control_plane.store.base import Store

ORG_ADMIN = "organization_admin"
GROUP_ADMIN = "runtime_group_admin"
VIEWER = "viewer"
ROLES = (ORG_ADMIN, GROUP_ADMIN, VIEWER)
KINDS = {"personal": "kpat_", "system": "spat_"}
_ALPHABET = string.ascii_letters + string.digits


def digest(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(kind: str) -> str:
    """Return a fresh random token of a kind (`personal` or `system`)."""
    return KINDS[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(46))


def token_record(
    token: str, *, name: str, role: str, groups: Sequence[str] = ()
) -> dict[str, Any]:
    """Return the record to store for `token`."""
    kind = "system" if token.startswith("spat_") else "personal"
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "kind": kind,
        "digest": digest(token),
        "role": role,
        "groups": list(groups),
        "created_at": now_iso(),
        "revoked_at": None,
    }


def public_token(record: dict[str, Any]) -> dict[str, Any]:
    """Return a token record as the API shows it (never the digest)."""
    return {
        key: record[key]
        for key in ("id", "name", "kind", "role", "groups", "created_at")
    }


@dataclass(frozen=True)
class Principal:
    """The caller a token identifies."""

    token_id: str
    role: str
    groups: frozenset[str]

    def require_admin(self) -> None:
        """Refuse unless the caller is an organisation admin."""
        if self.role != ORG_ADMIN:
            raise Problem(403, "this call needs an organization admin token")

    def require_write(self, group_ids: Sequence[str]) -> None:
        """Refuse unless the caller may change every group in `group_ids`."""
        if self.role == ORG_ADMIN:
            return
        if self.role == VIEWER:
            raise Problem(403, "a viewer token can only read")
        outside = [g for g in group_ids if g not in self.groups]
        if outside or not group_ids:
            raise Problem(
                403,
                "this token may not change runtime group(s) "
                f"{', '.join(outside) or '(none given)'}",
            )


class TokenCache:
    """Remember verified tokens so that each request costs no database read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, Principal] = {}

    async def principal(self, token: str) -> Principal | None:
        """Return the caller a token identifies, or None if it is unknown."""
        key = digest(token)
        known = self._known.get(key)
        if known is not None:
            return known
        record = await self._store.find_token(key)
        if record is None:
            return None
        principal = Principal(record["id"], record["role"], frozenset(record["groups"]))
        self._known[key] = principal
        return principal

    def forget(self, token_id: str) -> None:
        """Drop a revoked token from the cache."""
        for key, principal in list(self._known.items()):
            if principal.token_id == token_id:
                del self._known[key]


async def ensure_admin_token(store: Store, initial: str | None) -> str | None:
    """Make sure someone can log in; return a newly made token to print once.

    `initial` (from PORTICO_ADMIN_TOKEN) is registered when it is not known;
    otherwise a fresh CP with no token at all gets one.
    """
    if initial:
        if await store.find_token(digest(initial)) is None:
            await store.create_token(
                token_record(initial, name="initial admin", role=ORG_ADMIN)
            )
        return None
    if await store.count_tokens() > 0:
        return None
    token = new_token("personal")
    await store.create_token(token_record(token, name="initial admin", role=ORG_ADMIN))
    return token
