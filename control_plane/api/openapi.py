"""The OpenAPI document of the admin API, built from its own routes.

Each operation is listed with the summary its endpoint's docstring gives, so
the document cannot drift from what the control plane serves. The generic
core-entity routes (`/core-entities/{collection}`) are listed once per entity
collection, with that entity's schema; query parameters, bodies and success
codes come from the table :data:`OPERATIONS`, keyed by endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.api import (
    certificates,
    entities,
    memberships,
    nodes,
    runtime_groups,
    snapshots,
    tokens,
)
from control_plane.api.common import json
from control_plane.api.openapi_schemas import (
    ENTITY_NAMES,
    Schema,
    entity_schemas,
    group_schemas,
    ref,
)
from control_plane.api.vocabulary import Vocabulary

PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
DOCUMENTED = ("/v2/", "/health", "/openapi.json")
PUBLIC = {"/health", "/openapi.json", "/v2/openapi.json"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _page_size(high: int = 1000) -> Schema:
    schema = {"type": "integer", "minimum": 1, "maximum": high, "default": 100}
    return _query("page[size]", schema, "items per page")


PAGE_NUMBER = _query(
    "page[number]", {"type": "integer", "minimum": 1}, "page to return, from 1"
)
PAGE_AFTER = _query(
    "page[after]", {"type": "string"}, "return the items after this cursor"
)
DRY_RUN = _query(
    "dry_run",
    {"type": "boolean", "default": False},
    "preview the merge the change would cause, without applying it",
)
GROUP_FILTERS = [
    _query(name, {"type": "string"}, "filter the listed runtime groups")
    for name in sorted(runtime_groups.FILTERS - {"labels"})
] + [
    _query("labels", {"type": "string"}, "key:value or key, comma-separated"),
    _query("sort", {"type": "string"}, "created_at, updated_at or name; -desc"),
]
ENTITY_LIST = [
    _query(
        "size",
        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "items per page",
    ),
    _query("offset", {"type": "string"}, "the `offset` of the previous page"),
    _query("tags", {"type": "string"}, "tags: a,b (all of) or a/b (any of)"),
]


@dataclass(frozen=True)
class Operation:
    """What the document says of an endpoint beyond its path and summary."""

    ok: str = "200"
    body: str | None = None
    form: bool = False
    query: list[Schema] = field(default_factory=list)
    result: str | None = None
    # Other success codes and what they mean.
    also: tuple[tuple[str, str], ...] = ()


Endpoint = Callable[..., Any]
OPERATIONS: dict[Endpoint, Operation] = {
    tokens.list_tokens: Operation(),
    tokens.create_token: Operation("201", "CreateToken", result="Token"),
    tokens.current_token: Operation(result="Token"),
    tokens.revoke_token: Operation("204"),
    runtime_groups.list_groups: Operation(
        query=[_page_size(), PAGE_NUMBER, *GROUP_FILTERS], result="RuntimeGroupList"
    ),
    runtime_groups.create_group: Operation(
        "201", "CreateRuntimeGroup", form=True, result="RuntimeGroup"
    ),
    runtime_groups.get_group: Operation(result="RuntimeGroup"),
    runtime_groups.update_group: Operation(
        "200", "UpdateRuntimeGroup", form=True, result="RuntimeGroup"
    ),
    runtime_groups.delete_group: Operation("204"),
    memberships.change_members: Operation(
        "204",
        "Members",
        form=True,
        query=[DRY_RUN],
        also=(("200", "the merge state a dry run would cause"),),
    ),
    memberships.member_status: Operation(result="MemberStatus"),
    certificates.create_certificate: Operation("201", "Certificate"),
    certificates.generate_certificate: Operation("201", "Certificate"),
    certificates.delete_certificate: Operation("204"),
    nodes.list_nodes: Operation(query=[_page_size(), PAGE_AFTER]),
    nodes.delete_node: Operation("204"),
    snapshots.expected_config_hash: Operation(),
    snapshots.expected_config_version: Operation(),
}


def _endpoint(route: Route) -> tuple[Endpoint, Vocabulary | None]:
    """Return the function behind a route and the URL family it is bound to."""
    endpoint = route.endpoint
    keywords = getattr(endpoint, "keywords", {})
    return getattr(endpoint, "func", endpoint), keywords.get("vocab")


def _describe(route: Route, endpoint: Endpoint, vocab: Vocabulary | None) -> Operation:
    if endpoint is memberships.list_members:
        paging = PAGE_AFTER if vocab is not None and vocab.wraps_status else PAGE_NUMBER
        return Operation(query=[_page_size(), paging])
    if endpoint is memberships.composite_status:
        wrapped = vocab is not None and vocab.wraps_status
        return Operation(result=None if wrapped else "CompositeStatus")
    return OPERATIONS.get(endpoint, Operation())


def _operation(
    route: Route, method: str, path: str, described: Operation
) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip().splitlines()
    parts = [p for p in path.strip("/").split("/") if not p.startswith("{")]
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}-"
        + "-".join(p.strip("{}") for p in path.strip("/").split("/")).replace("_", "-"),
        "summary": doc[0] if doc else path,
        "tags": [parts[1] if len(parts) > 1 else parts[0]],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in PARAM.findall(path)
        ]
        + described.query,
        "responses": {
            "default": {
                "description": "an error, as application/problem+json",
                "content": {"application/problem+json": {"schema": ref("Problem")}},
            }
        },
    }
    success: dict[str, Any] = {"description": "success"}
    if described.result is not None:
        success["content"] = {JSON: {"schema": ref(described.result)}}
    operation["responses"][described.ok] = success
    for code, description in described.also:
        operation["responses"][code] = {"description": description}
    if described.body is not None:
        content = {JSON: {"schema": ref(described.body)}}
        if described.form:
            content[FORM] = {"schema": ref(described.body)}
        operation["requestBody"] = {"required": False, "content": content}
    if path in PUBLIC:
        operation["security"] = []
    return operation


def _entity_paths(route: Route) -> Iterator[tuple[str, str, str]]:
    """Yield (path, entity type, parent type) for each collection of a route."""
    base, _, tail = route.path.partition("/core-entities/")
    suffix = "/{key}" if tail.endswith("{key}") else ""
    if tail.startswith("{parent}"):
        for (parent, child), (kind, _) in entities.NESTED.items():
            path = f"{base}/core-entities/{parent}/{{parent_key}}/{child}{suffix}"
            yield path, kind, parent
    else:
        for segment, kind in entities.TOP_LEVEL.items():
            yield f"{base}/core-entities/{segment}{suffix}", kind, ""


def _entity_operation(
    route: Route, method: str, path: str, kind: str, parent: str
) -> dict[str, Any]:
    endpoint, _ = _endpoint(route)
    component = ENTITY_NAMES[kind]
    if endpoint is entities.list_entities:
        described = Operation(query=list(ENTITY_LIST), result=f"{component}List")
    elif endpoint is entities.delete_entity:
        described = Operation("204")
    elif endpoint is entities.get_entity:
        described = Operation(result=component)
    elif endpoint is entities.create_entity:
        described = Operation("201", component, form=True, result=component)
    else:
        also = (("201", "created"),) if endpoint is entities.upsert_entity else ()
        described = Operation("200", component, form=True, result=component, also=also)
    operation = _operation(route, method, path, described)
    if parent:
        operation["summary"] += f" (of one of the {parent})"
    return operation


def build(routes: list[Any]) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document describing `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        # The browser UI's files are not part of the API.
        if not isinstance(route, Route) or not route.path.startswith(DOCUMENTED):
            continue
        methods = sorted(m for m in route.methods or () if m != "HEAD")
        if "{collection}" in route.path:
            for path, kind, parent in _entity_paths(route):
                for method in methods:
                    paths.setdefault(path, {})[method.lower()] = _entity_operation(
                        route, method, path, kind, parent
                    )
            continue
        path = PARAM.sub(r"{\1}", route.path)
        endpoint, vocab = _endpoint(route)
        described = _describe(route, endpoint, vocab)
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = _operation(
                route, method, path, described
            )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Portico control plane admin API",
            "version": "2.0.0",
            "description": "Runtime groups, composite memberships, core entities, "
            "pinned data plane certificates, nodes and tokens.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**group_schemas(), **entity_schemas()},
        },
    }


async def document(request: Request) -> Response:
    """Serve the OpenAPI document of this admin API."""
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = build(list(request.app.routes))
        request.app.state.openapi = cached
    return json(cached)
