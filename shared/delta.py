"""Compute, combine and apply the changes between two configs (no I/O).

A config (see :mod:`shared.snapshot`) maps entity types to lists of entities
sorted by id, beside a few plain fields such as ``_format_version``; a list
whose first item is a mapping with a string id is taken for a list of
entities. A
:class:`Delta` turns one config into another: it carries the entities added
or changed (whole), the ids removed, and the plain fields of the result.
Applying a delta re-sorts each list by id, so the result hashes exactly like
the config the control plane built, and the node can check that it does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from shared.snapshot import Config

Entity = Mapping[str, Any]


@dataclass(frozen=True)
class Delta:
    """Turn one config into another: upserted entities and deleted ids per type.

    `lists` names the entity lists of the resulting config, `fields` holds
    its other top-level values. A type in neither `upserts` nor `deletes`
    keeps its entities as they are.
    """

    lists: tuple[str, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    upserts: Mapping[str, Sequence[Entity]] = field(default_factory=dict)
    deletes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Return how many entities the delta adds, changes or removes."""
        return sum(len(v) for v in self.upserts.values()) + sum(
            len(v) for v in self.deletes.values()
        )


def _is_entity_list(value: object) -> TypeGuard[list[Entity]]:
    # Configs come from build_config or merge_members, whose lists hold
    # entities only: looking at the first one tells a list of entities from
    # a plain value, without a pass over every entity.
    if not isinstance(value, list):
        return False
    if not value:
        return True
    first = value[0]
    return isinstance(first, Mapping) and isinstance(first.get("id"), str)


def split(config: Config) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return the entity list names of a config and its other fields."""
    lists = tuple(sorted(k for k, v in config.items() if _is_entity_list(v)))
    fields = {k: v for k, v in config.items() if k not in lists}
    return lists, fields


def entity_count(config: Config) -> int:
    """Return how many entities a config holds."""
    return sum(len(v) for v in config.values() if _is_entity_list(v))


def diff(old: Config, new: Config) -> Delta:
    """Return the delta that turns `old` into `new`."""
    lists, fields = split(new)
    upserts: dict[str, list[Entity]] = {}
    deletes: dict[str, list[str]] = {}
    for key in lists:
        before_list = old.get(key)
        before = (
            {e["id"]: e for e in before_list} if _is_entity_list(before_list) else {}
        )
        after = new[key]
        # Unchanged entities are usually the very same objects: the control
        # plane shares them between versions, so identity settles most.
        changed = [e for e in after if (b := before.get(e["id"])) is not e and b != e]
        if changed:
            upserts[key] = changed
        kept = {e["id"] for e in after}
        gone = [i for i in before if i not in kept]
        if gone:
            deletes[key] = gone
    return Delta(lists, fields, upserts, deletes)


def squash(deltas: Iterable[Delta]) -> Delta | None:
    """Combine consecutive deltas into one; None if their lists differ.

    The lists must stay the same throughout: a type that appears or
    disappears on the way is left to a full config.
    """
    result: Delta | None = None
    latest: dict[str, dict[str, Entity | None]] = {}
    for delta in deltas:
        if result is not None and delta.lists != result.lists:
            return None
        for key, entities in delta.upserts.items():
            slot = latest.setdefault(key, {})
            for entity in entities:
                slot[entity["id"]] = entity
        for key, ids in delta.deletes.items():
            slot = latest.setdefault(key, {})
            for entity_id in ids:
                slot[entity_id] = None
        result = delta
    if result is None:
        return None
    return Delta(
        result.lists,
        result.fields,
        {
            key: [e for e in slot.values() if e is not None]
            for key, slot in latest.items()
            if any(e is not None for e in slot.values())
        },
        {
            key: [i for i, e in slot.items() if e is None]
            for key, slot in latest.items()
            if any(e is None for e in slot.values())
        },
    )


def apply_delta(config: Config, delta: Delta) -> dict[str, Any]:
    """Return the config that `delta` makes of `config`; `config` is untouched."""
    result: dict[str, Any] = dict(delta.fields)
    for key in delta.lists:
        current = config.get(key)
        entities = list(current) if _is_entity_list(current) else []
        upserts = delta.upserts.get(key, ())
        deletes = delta.deletes.get(key, ())
        if upserts or deletes:
            by_id = {e["id"]: e for e in entities}
            for entity_id in deletes:
                by_id.pop(entity_id, None)
            for entity in upserts:
                by_id[entity["id"]] = entity
            entities = sorted(by_id.values(), key=lambda e: str(e["id"]))
        result[key] = entities
    return result
