"""Core entities under /core-entities, with Kong Admin API semantics.

Collections: services, routes, consumers, plugins, and the credentials
basic-auths, key-auths, acls; nested forms such as services/{id}/routes or
consumers/{id}/basic-auth scope a collection to its parent. An entity is
addressed by id or by its name (username, key). A composite group is
read-only: its collections list the merged configuration of its members.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from control_plane import editor
from control_plane.api.common import (
    authenticate,
    group_or_404,
    json,
    no_content,
    query_int,
    read_body,
    require_group_write,
    store,
)
from control_plane.editor import Scope
from control_plane.group_state import GroupState
from control_plane.problems import Problem, not_found
from control_plane.store.base import EditResult
from shared.errors import InvalidParameter
from shared.schema import ENTITIES, public_view

# URL segment -> entity type, at the top level and nested under a parent.
TOP_LEVEL = {
    "services": "services",
    "routes": "routes",
    "consumers": "consumers",
    "plugins": "plugins",
    "basic-auths": "basicauth_credentials",
    "key-auths": "keyauth_credentials",
    "acls": "acls",
}
NESTED: dict[tuple[str, str], tuple[str, str]] = {
    ("services", "routes"): ("routes", "service"),
    ("services", "plugins"): ("plugins", "service"),
    ("routes", "plugins"): ("plugins", "route"),
    ("consumers", "plugins"): ("plugins", "consumer"),
    ("consumers", "basic-auth"): ("basicauth_credentials", "consumer"),
    ("consumers", "key-auth"): ("keyauth_credentials", "consumer"),
    ("consumers", "acls"): ("acls", "consumer"),
}


def _collection(request: Request) -> str:
    segment = request.path_params["collection"]
    parent = request.path_params.get("parent")
    if parent is None:
        type_name = TOP_LEVEL.get(segment)
    else:
        type_name = NESTED.get((parent, segment), (None, ""))[0]
    if type_name is None:
        raise not_found("endpoint", request.url.path)
    return type_name


async def _target(
    request: Request, *, write: bool
) -> tuple[dict[str, Any], str, GroupState | None, Parent | None]:
    """Return the group, the entity type, the state to read and the parent.

    Writes get no state: their plan reads the current one inside the store's
    transaction.
    """
    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    type_name = _collection(request)
    parent = request.path_params.get("parent")
    scope = None
    if parent is not None:
        field = NESTED[(parent, request.path_params["collection"])][1]
        scope = Parent(field, TOP_LEVEL[parent], request.path_params["parent_key"])
    if write:
        await require_group_write(request, principal, group)
        if group["cluster_type"] == "composite":
            raise Problem(
                400,
                f"runtime group '{group['name']}' is a composite runtime group: its "
                "configuration is the merge of its members and is read-only; "
                "change the entity in one of its members instead",
                [InvalidParameter("id", "read_only", "a composite runtime group")],
            )
        return group, type_name, None, scope
    if group["cluster_type"] == "composite":
        state = await _composite_state(request, group["id"])
    else:
        state = await store(request).state(group["id"])
    return group, type_name, state, scope


@dataclass(frozen=True)
class Parent:
    """The parent named in a nested URL, not yet resolved to an id."""

    field: str
    parent_type: str
    key: str

    def resolve(self, state: GroupState) -> Scope:
        found = editor.find(state, self.parent_type, self.key)
        if found is None:
            raise not_found(ENTITIES[self.parent_type].endpoint, self.key)
        return Scope(self.field, self.parent_type, found["id"])


async def _composite_state(request: Request, group_id: str) -> GroupState:
    snapshot = await store(request).expected_snapshot(group_id)
    if snapshot is None:
        return GroupState()
    return GroupState.from_rows(
        (key, entity)
        for key, items in snapshot.config.items()
        if isinstance(items, list)
        for entity in items
    )


def _matches_tags(entity: dict[str, Any], query: str | None) -> bool:
    if not query:
        return True
    tags = set(entity.get("tags") or ())
    if "/" in query:
        return any(tag in tags for tag in query.split("/"))
    return all(tag in tags for tag in query.split(","))


async def list_entities(request: Request) -> Response:
    """List entities ordered by id, `size` at a time, from `offset`."""
    _, type_name, state, parent = await _target(request, write=False)
    assert state is not None, "reads always get a state"
    scope = _rescope(state, parent)
    size = query_int(request, "size", 100, 1, 1000)
    offset = request.query_params.get("offset") or ""
    tags = request.query_params.get("tags")
    items = sorted(
        (
            e
            for e in state.tables[type_name].values()
            if e["id"] > offset and _matches_tags(e, tags) and editor.in_scope(e, scope)
        ),
        key=lambda e: str(e["id"]),
    )
    page = items[:size]
    following = page[-1]["id"] if len(items) > size else None
    next_url = None
    if following is not None:
        query = {"offset": following, "size": size} | ({"tags": tags} if tags else {})
        next_url = f"{request.url.path}?{urlencode(query)}"
    return json(
        {
            "data": [public_view(type_name, e) for e in page],
            "next": next_url,
            "offset": following,
        }
    )


async def get_entity(request: Request) -> Response:
    """Return one entity, addressed by id or name."""
    _, type_name, state, parent = await _target(request, write=False)
    assert state is not None, "reads always get a state"
    scope = _rescope(state, parent)
    entity = editor.lookup(state, type_name, request.path_params["key"], scope)
    return json(public_view(type_name, entity))


async def create_entity(request: Request) -> Response:
    """Create an entity (201)."""
    group, type_name, _, scope = await _target(request, write=True)
    body = await read_body(request, type_name)

    def plan(state: GroupState) -> EditResult[dict[str, Any]]:
        return editor.plan_create(
            state, type_name, body, now=int(time.time()), scope=_rescope(state, scope)
        )

    entity = await store(request).edit(group["id"], plan)
    return json(public_view(type_name, entity), 201)


async def update_entity(request: Request) -> Response:
    """Change some fields of an entity (PATCH)."""
    group, type_name, _, scope = await _target(request, write=True)
    body = await read_body(request, type_name)
    key = request.path_params["key"]

    def plan(state: GroupState) -> EditResult[dict[str, Any]]:
        return editor.plan_update(
            state,
            type_name,
            key,
            body,
            now=int(time.time()),
            scope=_rescope(state, scope),
        )

    entity = await store(request).edit(group["id"], plan)
    return json(public_view(type_name, entity))


async def upsert_entity(request: Request) -> Response:
    """Create or replace an entity at its id or name (PUT)."""
    group, type_name, _, scope = await _target(request, write=True)
    body = await read_body(request, type_name)
    key = request.path_params["key"]
    created = False

    def plan(state: GroupState) -> EditResult[dict[str, Any]]:
        nonlocal created
        result, created = editor.plan_upsert(
            state,
            type_name,
            key,
            body,
            now=int(time.time()),
            scope=_rescope(state, scope),
        )
        return result

    entity = await store(request).edit(group["id"], plan)
    return json(public_view(type_name, entity), 201 if created else 200)


async def delete_entity(request: Request) -> Response:
    """Delete an entity; credentials and plugins follow their parent (204)."""
    group, type_name, _, scope = await _target(request, write=True)
    key = request.path_params["key"]

    def plan(state: GroupState) -> EditResult[None]:
        return editor.plan_delete(state, type_name, key, scope=_rescope(state, scope))

    await store(request).edit(group["id"], plan)
    return no_content()


def _rescope(state: GroupState, parent: Parent | None) -> Scope | None:
    return None if parent is None else parent.resolve(state)


def routes(base: str) -> list[BaseRoute]:
    """Return the core-entity routes under `base`."""
    collection = base + "/{collection}"
    nested = base + "/{parent}/{parent_key}/{collection}"
    result: list[BaseRoute] = []
    for path in (collection, nested):
        item = path + "/{key}"
        result += [
            Route(path, list_entities, methods=["GET"]),
            Route(path, create_entity, methods=["POST"]),
            Route(item, get_entity, methods=["GET"]),
            Route(item, update_entity, methods=["PATCH"]),
            Route(item, upsert_entity, methods=["PUT"]),
            Route(item, delete_entity, methods=["DELETE"]),
        ]
    return result
