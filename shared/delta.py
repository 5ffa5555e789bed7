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

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.snapshot import Config, ConfigDigest, is_entity_list

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


def split(config: Config) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return the entity list names of a config and its other fields."""
    lists = tuple(sorted(k for k, v in config.items() if is_entity_list(v)))
    fields = {k: v for k, v in config.items() if k not in lists}
    return lists, fields


def entity_count(config: Config) -> int:
    """Return how many entities a config holds."""
    return sum(len(v) for v in config.values() if is_entity_list(v))


def diff(old: Config, new: Config) -> Delta:
    """Return the delta that turns `old` into `new`."""
    lists, fields = split(new)
    upserts: dict[str, list[Entity]] = {}
    deletes: dict[str, list[str]] = {}
    for key in lists:
        before_list = old.get(key)
        before = (
            {e["id"]: e for e in before_list} if is_entity_list(before_list) else {}
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


# Changes to one list applied in place; with more, the list is sorted anew.
_SPLICE_LIMIT = 64


def apply_delta(config: Config, delta: Delta) -> dict[str, Any]:
    """Return the config that `delta` makes of `config`; `config` is untouched."""
    result: dict[str, Any] = dict(delta.fields)
    for key in delta.lists:
        current = config.get(key)
        entities = list(current) if is_entity_list(current) else []
        upserts = delta.upserts.get(key, ())
        deletes = delta.deletes.get(key, ())
        if len(upserts) + len(deletes) > _SPLICE_LIMIT:
            by_id = {e["id"]: e for e in entities}
            for entity_id in deletes:
                by_id.pop(entity_id, None)
            for entity in upserts:
                by_id[entity["id"]] = entity
            entities = sorted(by_id.values(), key=_by_id)
        else:
            # A few changes to a list sorted by id: each finds its place.
            for entity_id in deletes:
                at = bisect_left(entities, str(entity_id), key=_by_id)
                if at < len(entities) and _by_id(entities[at]) == str(entity_id):
                    del entities[at]
            for entity in upserts:
                entity_id = _by_id(entity)
                at = bisect_left(entities, entity_id, key=_by_id)
                if at < len(entities) and _by_id(entities[at]) == entity_id:
                    entities[at] = entity
                else:
                    entities.insert(at, entity)
        result[key] = entities
    return result


def _by_id(entity: Entity) -> str:
    return str(entity["id"])


def find(entities: Sequence[Entity], entity_id: str) -> Entity | None:
    """Return the entity with `entity_id` from a list sorted by id, if any."""
    index = bisect_left(entities, entity_id, key=_by_id)
    if index < len(entities) and entities[index]["id"] == entity_id:
        return entities[index]
    return None


def digest_after(digest: ConfigDigest, config: Config, delta: Delta) -> ConfigDigest:
    """Return the digest of what `delta` makes of `config`, whose digest is given.

    It costs in proportion to the delta: the entities it replaces or removes
    are found in `config`'s sorted lists by bisection.
    """
    fields = orjson.dumps(dict(delta.fields), option=orjson.OPT_SORT_KEYS)
    if fields != digest.fields or set(delta.lists) != set(digest.sums):
        return ConfigDigest.of(apply_delta(config, delta))
    for key in delta.lists:
        upserts = delta.upserts.get(key, ())
        deletes = delta.deletes.get(key, ())
        if not upserts and not deletes:
            continue
        current = config.get(key)
        entities: Sequence[Entity] = current if is_entity_list(current) else ()
        removed = [
            old
            for entity_id in [*deletes, *(e["id"] for e in upserts)]
            if (old := find(entities, entity_id)) is not None
        ]
        digest = digest.replaced(key, removed, upserts)
    return digest
