"""The store interface every backend implements.

The admin API and the cluster listener only ever talk to a :class:`Store`.
A backend runs each operation in one transaction: an entity write, the
version bumps of its group and of every composite holding it, and the new
snapshot rows commit together or not at all. (Entity writes that queue up
while the database is busy may share a transaction; each still succeeds or
fails as a whole.) After a commit the backend hands
a :class:`Commit` to the `on_commit` callback on the event loop thread, in
commit order, so that publishing snapshots follows the order of writes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from control_plane.changelog import Change
from control_plane.group_state import GroupState
from shared.snapshot import Conflict, Snapshot

T = TypeVar("T")
Plan = Callable[[GroupState], "EditResult[T]"]


@dataclass(frozen=True)
class Commit:
    """What a committed transaction changed for data plane nodes."""

    snapshots: tuple[Snapshot, ...] = ()
    holds: tuple[tuple[str, bool], ...] = ()
    forgotten: tuple[str, ...] = ()
    # Per group, the change from its previous snapshot when the store knows
    # it from the edit itself; the change log diffs the others.
    changes: dict[str, Change] = field(default_factory=dict)


@dataclass(frozen=True)
class CompositeStatus:
    """The merge state of a composite group: OK, CONFLICT or UNKNOWN."""

    group_id: str
    state: str
    conflicts: tuple[Conflict, ...]
    created_at: str
    updated_at: str


@dataclass
class EditResult(Generic[T]):
    """The outcome of planning an entity write against a group's state."""

    value: T
    upserts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)


class Store(abc.ABC):
    """Keep runtime groups, entities, snapshots, tokens, certificates, nodes."""

    on_commit: Callable[[Commit], None] | None = None

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the database, migrate it and load every group into memory."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending work and close the database."""

    @abc.abstractmethod
    async def current_snapshots(self) -> list[tuple[Snapshot, bool]]:
        """Return each group's persisted snapshot and whether it is held."""

    # Runtime groups and memberships.

    @abc.abstractmethod
    async def create_group(self, group: dict[str, Any]) -> dict[str, Any]:
        """Insert a group (409 on a duplicate name) and its first snapshot."""

    @abc.abstractmethod
    async def get_group(self, group_id: str) -> dict[str, Any] | None:
        """Return a group by id."""

    @abc.abstractmethod
    async def list_groups(self) -> list[dict[str, Any]]:
        """Return every group, oldest first."""

    @abc.abstractmethod
    async def update_group(
        self, group_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Change name, description, labels or auth settings of a group."""

    @abc.abstractmethod
    async def delete_group(self, group_id: str) -> None:
        """Delete a group that is no composite's member, with its content."""

    @abc.abstractmethod
    async def members_of(self, composite_id: str) -> list[str]:
        """Return the ids of a composite's members, in joining order."""

    @abc.abstractmethod
    async def composites_of(self, group_id: str) -> list[str]:
        """Return the ids of the composites a group belongs to."""

    @abc.abstractmethod
    async def change_members(
        self,
        composite_id: str,
        operation: str,
        member_ids: Sequence[str],
        *,
        dry_run: bool = False,
    ) -> CompositeStatus:
        """Add, remove or replace members; return the resulting merge state."""

    @abc.abstractmethod
    async def composite_status(self, composite_id: str) -> CompositeStatus:
        """Return the merge state of a composite."""

    # Entities.

    @abc.abstractmethod
    async def state(self, group_id: str) -> GroupState:
        """Return the current entities of a standard group."""

    @abc.abstractmethod
    async def edit(self, group_id: str, plan: Plan[T]) -> T:
        """Apply the change `plan` computes from the group's current state."""

    @abc.abstractmethod
    async def expected_snapshot(self, group_id: str) -> Snapshot | None:
        """Return the snapshot the group's data plane nodes should run."""

    # Tokens.

    @abc.abstractmethod
    async def create_token(self, token: dict[str, Any]) -> None:
        """Insert a token record (its digest, never the token)."""

    @abc.abstractmethod
    async def find_token(self, digest: str) -> dict[str, Any] | None:
        """Return the unrevoked token with this digest."""

    @abc.abstractmethod
    async def list_tokens(self) -> list[dict[str, Any]]:
        """Return every unrevoked token record."""

    @abc.abstractmethod
    async def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; return whether it existed."""

    @abc.abstractmethod
    async def count_tokens(self) -> int:
        """Return how many unrevoked tokens exist."""

    # Pinned data plane client certificates.

    @abc.abstractmethod
    async def add_certificate(self, group_id: str, cert: dict[str, Any]) -> None:
        """Pin a client certificate to a group."""

    @abc.abstractmethod
    async def pinned_certificates(self, group_id: str) -> list[dict[str, Any]]:
        """Return a group's certificates, each with `id` and `fingerprint`."""

    @abc.abstractmethod
    async def delete_certificate(self, group_id: str, cert_id: str) -> bool:
        """Unpin a certificate; return whether it existed."""

    # Data plane nodes.

    @abc.abstractmethod
    async def upsert_node(self, group_id: str, node: dict[str, Any]) -> None:
        """Insert or update a node's status row."""

    @abc.abstractmethod
    async def set_node_connected(
        self, group_id: str, node_id: str, connected: bool
    ) -> None:
        """Mark a node as connected or gone."""

    @abc.abstractmethod
    async def count_connected_nodes(self, group_id: str) -> int:
        """Return how many nodes of a group are connected now."""

    @abc.abstractmethod
    async def list_nodes(self, group_id: str) -> list[dict[str, Any]]:
        """Return a group's nodes ordered by id."""

    @abc.abstractmethod
    async def delete_node(self, group_id: str, node_id: str) -> bool:
        """Forget a node; return whether it existed."""
