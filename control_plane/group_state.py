"""The entities of one standard runtime group, held in memory.

A :class:`GroupState` is never changed in place: a write produces a new state
that shares every untouched table with the old one. The store keeps the
current state of each group so that a write, and the rebuild of every
composite the group belongs to, never reloads members from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.snapshot import ENTITY_KEYS

Entity = dict[str, Any]
Index = dict[Any, str]


class GroupState:
    """Hold a group's entities by type and id, with lazily built lookup indexes."""

    __slots__ = ("tables", "_indexes")

    def __init__(
        self,
        tables: Mapping[str, Mapping[str, Entity]] | None = None,
        indexes: dict[tuple[str, str], Index] | None = None,
    ) -> None:
        base = tables or {}
        self.tables: dict[str, Mapping[str, Entity]] = {
            key: base.get(key, {}) for key in ENTITY_KEYS
        }
        self._indexes: dict[tuple[str, str], Index] = indexes or {}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, Entity]]) -> GroupState:
        """Build a state from `(type, entity)` pairs read from storage."""
        tables: dict[str, dict[str, Entity]] = {key: {} for key in ENTITY_KEYS}
        for type_name, entity in rows:
            tables.setdefault(type_name, {})[entity["id"]] = entity
        return cls(tables)

    def entities(self) -> dict[str, list[Entity]]:
        """Return every entity, as lists per type, for building a config."""
        return {key: list(table.values()) for key, table in self.tables.items()}

    def count(self) -> int:
        """Return how many entities the group holds."""
        return sum(len(table) for table in self.tables.values())

    def get(self, type_name: str, entity_id: str) -> Entity | None:
        """Return an entity by type and id."""
        return self.tables.get(type_name, {}).get(entity_id)

    def index(self, type_name: str, field: str) -> Index:
        """Return `{value: id}` for one field, built on first use."""
        key = (type_name, field)
        index = self._indexes.get(key)
        if index is None:
            index = {}
            for entity_id, entity in self.tables.get(type_name, {}).items():
                value = _indexable(entity.get(field))
                if value is not None:
                    index[value] = entity_id
            self._indexes[key] = index
        return index

    def find(self, type_name: str, field: str, value: Any) -> Entity | None:
        """Return the entity whose `field` equals `value`, if any."""
        entity_id = self.index(type_name, field).get(_indexable(value))
        return None if entity_id is None else self.get(type_name, entity_id)

    def select(
        self, type_name: str, predicate: Callable[[Entity], bool]
    ) -> list[Entity]:
        """Return the entities of a type for which `predicate` holds."""
        return [e for e in self.tables.get(type_name, {}).values() if predicate(e)]

    def with_changes(
        self,
        upserts: Iterable[tuple[str, Entity]],
        deletes: Iterable[tuple[str, str]],
    ) -> GroupState:
        """Return a new state with entities replaced, added and removed."""
        tables = dict(self.tables)
        indexes = dict(self._indexes)
        copied: set[str] = set()

        def table(type_name: str) -> dict[str, Entity]:
            if type_name not in copied:
                tables[type_name] = dict(tables.get(type_name, {}))
                copied.add(type_name)
            return tables[type_name]  # type: ignore[return-value]

        touched_indexes: set[tuple[str, str]] = set()

        def unindex(type_name: str, old: Entity) -> None:
            for key in [k for k in indexes if k[0] == type_name]:
                if key not in touched_indexes:
                    indexes[key] = dict(indexes[key])
                    touched_indexes.add(key)
                value = _indexable(old.get(key[1]))
                if value is not None and indexes[key].get(value) == old["id"]:
                    del indexes[key][value]

        def reindex(type_name: str, new: Entity) -> None:
            for key in [k for k in indexes if k[0] == type_name]:
                if key not in touched_indexes:
                    indexes[key] = dict(indexes[key])
                    touched_indexes.add(key)
                value = _indexable(new.get(key[1]))
                if value is not None:
                    indexes[key][value] = new["id"]

        for type_name, entity_id in deletes:
            old = table(type_name).pop(entity_id, None)
            if old is not None:
                unindex(type_name, old)
        for type_name, entity in upserts:
            old = table(type_name).get(entity["id"])
            if old is not None:
                unindex(type_name, old)
            table(type_name)[entity["id"]] = entity
            reindex(type_name, entity)
        return GroupState(tables, indexes)


def _indexable(value: Any) -> Any:
    # Foreign keys are {"id": ...}; lists and maps are never unique keys.
    if isinstance(value, dict):
        return value.get("id")
    if isinstance(value, list):
        return None
    return value
