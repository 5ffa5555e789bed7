"""Rebuild a standard group's config from the previous one and what changed.

:func:`shared.snapshot.build_config` makes a config from every entity of a
group; an admin write changes a handful. :func:`patch_config` takes the
previous config and the ids the write touched and returns the same config
that a full build would, its digest and the delta between the two, at a cost
that follows the size of the change rather than of the group.

A full build also leaves out disabled services with their routes and
plugins. When a write touches a service or route that is, or was, left out,
entities it did not touch may enter or leave the config: :func:`patch_config`
then declines (returns None) and the caller builds the config whole.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from shared.delta import Delta, split
from shared.snapshot import Config, ConfigDigest

Entity = Mapping[str, Any]
Tables = Mapping[str, Mapping[str, Entity]]
# Per entity type, the ids a change touched.
Changed = Mapping[str, Collection[str]]


@dataclass(frozen=True)
class Patched:
    """A config rebuilt by patching, with its digest and the delta applied."""

    config: dict[str, Any]
    digest: ConfigDigest
    delta: Delta


def _by_id(entity: Entity) -> str:
    return str(entity["id"])


def _fk_id(entity: Entity, field: str) -> str | None:
    ref = entity.get(field)
    if isinstance(ref, Mapping):
        value = ref.get("id")
        return None if value is None else str(value)
    return None


def _service_disabled(tables: Tables, service_id: str | None) -> bool:
    if service_id is None:
        return False
    service = tables.get("services", {}).get(service_id)
    return service is not None and service.get("enabled") is False


def included(key: str, entity: Entity, tables: Tables) -> bool:
    """Tell whether a full build of `tables` keeps `entity` (of type `key`)."""
    if key == "services":
        return entity.get("enabled") is not False
    if key == "routes":
        return not _service_disabled(tables, _fk_id(entity, "service"))
    if key == "plugins":
        if entity.get("enabled") is False:
            return False
        if _service_disabled(tables, _fk_id(entity, "service")):
            return False
        route_id = _fk_id(entity, "route")
        route = None if route_id is None else tables.get("routes", {}).get(route_id)
        return route is None or not _service_disabled(tables, _fk_id(route, "service"))
    return True


def _touches_left_out(before: Tables, after: Tables, changed: Changed) -> bool:
    # Others depend on services and routes only; a write that keeps every
    # service and route it touches in the config cannot move anything else.
    for key in ("services", "routes"):
        for entity_id in changed.get(key, ()):
            for tables in (before, after):
                entity = tables.get(key, {}).get(entity_id)
                if entity is not None and not included(key, entity, tables):
                    return True
    return False


def patch_config(
    config: Config,
    digest: ConfigDigest,
    before: Tables,
    after: Tables,
    changed: Changed,
) -> Patched | None:
    """Return the config of `after`, patched from `config`, the config of `before`.

    `digest` is `config`'s digest and `changed` names, per entity type, the ids
    that differ between `before` and `after`. None when patching cannot tell
    what a full build would do (see the module's documentation).
    """
    if _touches_left_out(before, after, changed):
        return None
    result = dict(config)
    upserts: dict[str, list[Entity]] = {}
    deletes: dict[str, list[str]] = {}
    for key, ids in changed.items():
        if not ids:
            continue
        entities = list(result.get(key, ()))
        added: list[Entity] = []
        removed: list[Entity] = []
        for entity_id in sorted(ids):
            new = after.get(key, {}).get(entity_id)
            if new is not None and not included(key, new, after):
                new = None
            index = bisect_left(entities, entity_id, key=_by_id)
            old = None
            if index < len(entities) and entities[index]["id"] == entity_id:
                old = entities[index]
            if old is new or (old is not None and new is not None and old == new):
                continue
            if old is not None:
                removed.append(old)
            if new is None:
                del entities[index]
                deletes.setdefault(key, []).append(entity_id)
                continue
            if old is None:
                entities.insert(index, new)
            else:
                entities[index] = new
            added.append(new)
            upserts.setdefault(key, []).append(new)
        if added or removed:
            result[key] = entities
            digest = digest.replaced(key, removed, added)
    lists, fields = split(result)
    return Patched(result, digest, Delta(lists, fields, upserts, deletes))
