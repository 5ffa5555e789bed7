"""The OpenAPI document of the admin API, built from its own routes.

Each operation is listed with the summary its endpoint's docstring gives, so
the document cannot drift from what the control plane serves.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_plane.api.common import json

PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
DOCUMENTED = ("/v2/", "/health", "/openapi.json")
PUBLIC = {"/health", "/openapi.json", "/v2/openapi.json"}


def _operation(route: Route, method: str, path: str) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip().splitlines()
    parts = [p for p in path.strip("/").split("/") if not p.startswith("{")]
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}-" + "-".join(parts).replace("_", "-"),
        "summary": doc[0] if doc else path,
        "tags": [parts[1] if len(parts) > 1 else parts[0]],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in PARAM.findall(path)
        ],
        "responses": {
            "default": {
                "description": "an error, as application/problem+json",
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}
                    }
                },
            }
        },
    }
    ok = {"POST": "201", "DELETE": "204"}.get(method, "200")
    operation["responses"][ok] = {"description": "success"}
    if path in PUBLIC:
        operation["security"] = []
    return operation


def build(routes: list[Any]) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document describing `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        # The browser UI's files are not part of the API.
        if not isinstance(route, Route) or not route.path.startswith(DOCUMENTED):
            continue
        path = PARAM.sub(r"{\1}", route.path)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, path)
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
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["status", "title", "instance", "detail"],
                    "properties": {
                        "status": {"type": "integer"},
                        "title": {"type": "string"},
                        "type": {"type": "string"},
                        "instance": {"type": "string"},
                        "detail": {"type": "string"},
                        "invalid_parameters": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "rule": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            },
        },
    }


async def document(request: Request) -> Response:
    """Serve the OpenAPI document of this admin API."""
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = build(list(request.app.routes))
        request.app.state.openapi = cached
    return json(cached)
