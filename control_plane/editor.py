"""Plan entity writes against a group's state, with Kong's Admin API rules.

The functions here are pure: they read a :class:`GroupState` and return an
:class:`EditResult` (what to upsert and delete) or raise. The store runs them
inside its write transaction, so a uniqueness or reference check cannot race
with another request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_plane.group_state import Entity, GroupState
from control_plane.problems import Problem, not_found
from control_plane.store.base import EditResult
from shared.errors import InvalidParameter
from shared.schema import ENTITIES, dependents, plugin_scope_key, validate_entity
from shared.schema.typedefs import is_uuid


@dataclass(frozen=True)
class Scope:
    """The parent of a nested endpoint, e.g. the service of services/x/routes."""

    field: str
    parent_type: str
    parent_id: str


def _label(value: Any) -> str:
    return "null" if value is None else f'"{value}"'


def find(state: GroupState, type_name: str, key: str) -> Entity | None:
    """Return an entity by id, or by its endpoint key (a name, a username)."""
    if is_uuid(key):
        found = state.get(type_name, key)
        if found is not None:
            return found
    field = ENTITIES[type_name].endpoint_key
    return None if field is None else state.find(type_name, field, key)


def resolver(state: GroupState) -> Any:
    """Return the foreign key resolver `validate_entity` needs."""

    def resolve(type_name: str, ref: Mapping[str, Any]) -> str | None:
        ((key, value),) = ref.items()
        entity = state.get(type_name, value) if key == "id" else None
        if entity is None and key != "id":
            entity = state.find(type_name, key, value)
        return None if entity is None else str(entity["id"])

    return resolve


def in_scope(entity: Entity, scope: Scope | None) -> bool:
    """Tell whether `entity` belongs to the parent a nested URL names."""
    if scope is None:
        return True
    ref = entity.get(scope.field)
    return isinstance(ref, Mapping) and ref.get("id") == scope.parent_id


def lookup(state: GroupState, type_name: str, key: str, scope: Scope | None) -> Entity:
    """Return the addressed entity or refuse with 404."""
    entity = find(state, type_name, key)
    if entity is None or not in_scope(entity, scope):
        raise not_found(ENTITIES[type_name].endpoint, key)
    return entity


def _check_unique(state: GroupState, type_name: str, entity: Entity) -> None:
    schema = ENTITIES[type_name]
    for field in schema.unique:
        value = entity.get(field)
        if value is None:
            continue
        owner = state.find(type_name, field, value)
        if owner is not None and owner["id"] != entity["id"]:
            shown = "<hidden>" if field in ("key",) else value
            raise Problem(
                409,
                f"UNIQUE violation detected on '{{{field}=\"{shown}\"}}'",
                extra={"name": "unique constraint violation", "fields": {field: shown}},
            )
    for fields in schema.unique_together:
        values = [_ref(entity.get(f)) for f in fields]
        for other in state.tables[type_name].values():
            if (
                other["id"] != entity["id"]
                and [_ref(other.get(f)) for f in fields] == values
            ):
                shown = ",".join(
                    f"{f}={_label(v)}" for f, v in zip(fields, values, strict=True)
                )
                raise Problem(409, f"UNIQUE violation detected on '{{{shown}}}'")
    if type_name == "plugins":
        key = plugin_scope_key(entity)
        for other in state.tables["plugins"].values():
            if other["id"] != entity["id"] and plugin_scope_key(other) == key:
                name, service, route, consumer = key
                raise Problem(
                    409,
                    "UNIQUE violation detected on "
                    f'\'{{consumer={_label(consumer)},name="{name}",'
                    f"route={_label(route)},service={_label(service)}}}'",
                )


def _ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


def _scoped_body(body: Mapping[str, Any], scope: Scope | None) -> dict[str, Any]:
    data = dict(body)
    if scope is not None:
        # The URL names the parent; like Kong, it wins over the body.
        data[scope.field] = {"id": scope.parent_id}
    return data


def plan_create(
    state: GroupState,
    type_name: str,
    body: Mapping[str, Any],
    *,
    now: int,
    scope: Scope | None = None,
) -> EditResult[Entity]:
    """Plan a POST: validate, then check the id and unique fields are free."""
    entity = validate_entity(
        type_name, _scoped_body(body, scope), now=now, resolve=resolver(state)
    )
    if state.get(type_name, entity["id"]) is not None:
        raise Problem(409, f"PRIMARY KEY violation on '{{id=\"{entity['id']}\"}}'")
    _check_unique(state, type_name, entity)
    return EditResult(entity, upserts=[(type_name, entity)])


def plan_update(
    state: GroupState,
    type_name: str,
    key: str,
    body: Mapping[str, Any],
    *,
    now: int,
    scope: Scope | None = None,
) -> EditResult[Entity]:
    """Plan a PATCH: merge the body over the existing entity."""
    existing = lookup(state, type_name, key, scope)
    data = dict(body)
    if scope is not None and scope.field in data:
        data[scope.field] = _scoped_body(data, scope)[scope.field]
    entity = validate_entity(
        type_name, data, existing=existing, now=now, resolve=resolver(state)
    )
    _check_unique(state, type_name, entity)
    return EditResult(entity, upserts=[(type_name, entity)])


def plan_upsert(
    state: GroupState,
    type_name: str,
    key: str,
    body: Mapping[str, Any],
    *,
    now: int,
    scope: Scope | None = None,
) -> tuple[EditResult[Entity], bool]:
    """Plan a PUT: replace the addressed entity, or create it; say which."""
    existing = find(state, type_name, key)
    if existing is not None and not in_scope(existing, scope):
        raise not_found(ENTITIES[type_name].endpoint, key)
    data = _scoped_body(body, scope)
    if existing is not None:
        data["id"] = existing["id"]
    elif is_uuid(key):
        data["id"] = key
    if not is_uuid(key):
        field = ENTITIES[type_name].endpoint_key
        if field is None:
            raise Problem(
                400,
                f"'{key}' is not a UUID",
                [InvalidParameter("id", "uuid", "expected a UUID")],
            )
        # Like Kong, the name in the URL is the entity's name, on a replace too.
        data[field] = key
    entity = validate_entity(type_name, data, now=now, resolve=resolver(state))
    if existing is not None:
        entity["created_at"] = existing["created_at"]
    _check_unique(state, type_name, entity)
    return EditResult(entity, upserts=[(type_name, entity)]), existing is None


def plan_delete(
    state: GroupState, type_name: str, key: str, *, scope: Scope | None = None
) -> EditResult[None]:
    """Plan a DELETE: cascade like Kong, refuse while a restricting ref exists."""
    entity = lookup(state, type_name, key, scope)
    deletes: list[tuple[str, str]] = []
    _collect(state, type_name, entity["id"], deletes)
    return EditResult(None, deletes=deletes)


def _collect(
    state: GroupState, type_name: str, entity_id: str, deletes: list[tuple[str, str]]
) -> None:
    for dep in dependents(type_name):
        holders = _holders(state, dep.entity_type, dep.field, entity_id)
        if holders and not dep.cascade:
            raise Problem(
                400,
                f"an existing '{dep.entity_type}' entity references this "
                f"'{type_name}' entity",
                [InvalidParameter("@referenced_by", "foreign_key", dep.entity_type)],
                extra={"name": "foreign key violation", "code": 4},
            )
    deletes.append((type_name, entity_id))
    for dep in dependents(type_name):
        if not dep.cascade:
            continue
        for holder in _holders(state, dep.entity_type, dep.field, entity_id):
            if (dep.entity_type, holder["id"]) not in deletes:
                _collect(state, dep.entity_type, holder["id"], deletes)


def _holders(
    state: GroupState, type_name: str, field: str, entity_id: str
) -> list[Entity]:
    return state.select(type_name, lambda e: _ref(e.get(field)) == entity_id)
