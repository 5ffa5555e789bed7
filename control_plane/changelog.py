"""Remember what changed between the recent versions of each runtime group.

The hub records the delta between every snapshot it publishes and the one
before it. A node that runs one of the recent versions is then sent the
changes since its version, squashed into one delta, rather than the whole
config. The log is bounded per group (a number of versions and a number of
changed entities); it forgets its oldest entries first, and a node further
behind gets the full config. A control plane that restarts starts with an
empty log.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from shared.delta import Delta, diff, entity_count, squash
from shared.snapshot import Snapshot

MAX_VERSIONS = 64
MAX_ENTITIES = 10_000
# A delta that touches more than this share of the target's entities is
# hardly smaller than the config itself: send the config.
MAX_SHARE = 0.5


@dataclass(frozen=True)
class Change:
    """The delta from one version of a group to the next one published."""

    base_version: int
    base_hash: str
    version: int
    hash: str
    delta: Delta


class ChangeLog:
    """Keep the recent changes of every group, bounded."""

    def __init__(
        self, max_versions: int = MAX_VERSIONS, max_entities: int = MAX_ENTITIES
    ) -> None:
        self._max_versions = max_versions
        self._max_entities = max_entities
        self._changes: dict[str, deque[Change]] = {}
        self._sizes: dict[str, int] = {}

    def record(
        self, previous: Snapshot, current: Snapshot, known: Change | None = None
    ) -> None:
        """Note the change from `previous` to `current`, of the same group.

        `known` is that change when the caller has it already; otherwise (or
        if it joins other versions) the two configs are compared.
        """
        assert previous.group_id == current.group_id, "a change within one group"
        group_id = current.group_id
        changes = self._changes.setdefault(group_id, deque())
        if changes and (changes[-1].version, changes[-1].hash) != (
            previous.version,
            previous.hash,
        ):
            # The chain is broken: no delta may span the gap.
            self.forget(group_id)
            changes = self._changes.setdefault(group_id, deque())
        if known is None or (
            known.base_version,
            known.base_hash,
            known.version,
            known.hash,
        ) != (previous.version, previous.hash, current.version, current.hash):
            known = Change(
                previous.version,
                previous.hash,
                current.version,
                current.hash,
                diff(previous.config, current.config),
            )
        change = known
        changes.append(change)
        size = self._sizes.get(group_id, 0) + change.delta.size
        while changes and (
            len(changes) > self._max_versions or size > self._max_entities
        ):
            size -= changes.popleft().delta.size
        self._sizes[group_id] = size

    def since(
        self, base_version: int, base_hash: str, target: Snapshot
    ) -> Delta | None:
        """Return the delta from a version to `target`, or None if unknown.

        None also when the delta would be about as large as the config.
        """
        changes = self._changes.get(target.group_id)
        if not changes or (changes[-1].version, changes[-1].hash) != (
            target.version,
            target.hash,
        ):
            return None
        start = None
        for index, change in enumerate(changes):
            if (change.base_version, change.base_hash) == (base_version, base_hash):
                start = index
                break
        if start is None:
            return None
        delta = squash(c.delta for c in list(changes)[start:])
        if delta is None:
            return None
        if delta.size > max(16, MAX_SHARE * entity_count(target.config)):
            return None
        return delta

    def forget(self, group_id: str) -> None:
        """Drop a group's changes."""
        self._changes.pop(group_id, None)
        self._sizes.pop(group_id, None)
