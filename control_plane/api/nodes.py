"""Data plane nodes of a runtime group, as the cluster listener records them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import (
    authenticate,
    group_or_404,
    json,
    no_content,
    query_int,
    require_group_write,
    store,
)
from control_plane.problems import not_found

FIELDS = (
    "id",
    "version",
    "hostname",
    "last_ping",
    "created_at",
    "updated_at",
    "config_hash",
    "labels",
    "config_version",
    "sync_state",
    "lag_ms",
    "connected",
    "error",
)


def node_view(
    node: dict[str, Any], request: Request | None = None, group_id: str = ""
) -> dict[str, Any]:
    """Return a node in the config API's shape plus Portico's sync fields.

    `telemetry` holds the request counters the node last reported on the
    telemetry endpoint (kept in memory by the cluster listener), or null.
    """
    view = {key: node.get(key) for key in FIELDS}
    view["type"] = "kong-proxy"
    view["compatibility_status"] = node.get("compatibility_status") or {
        "state": "COMPATIBILITY_STATE_UNKNOWN",
        "issues": [],
    }
    view["telemetry"] = (
        None if request is None else _telemetry(request, group_id, node["id"])
    )
    return view


def _telemetry(request: Request, group_id: str, node_id: str) -> dict[str, Any] | None:
    listener = getattr(request.app.state, "listener", None)
    telemetry = getattr(listener, "telemetry", None)
    if telemetry is None:
        return None
    report = telemetry.report(group_id, node_id)
    if report is None:
        return None
    return {"counters": dict(report.counters), "reported_at": int(report.received_at)}


async def list_nodes(request: Request) -> Response:
    """List a group's nodes, paged with `page[size]` and `page[after]`."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    size = query_int(request, "page[size]", 100, 1, 1000)
    after = request.query_params.get("page[after]")
    nodes = await store(request).list_nodes(group["id"])
    total = len(nodes)
    if after:
        nodes = [n for n in nodes if n["id"] > after]
    page = nodes[:size]
    following = page[-1]["id"] if len(nodes) > size else None
    return json(
        {
            "items": [node_view(n, request, group["id"]) for n in page],
            "page": {"total_count": total, "next": following},
        }
    )


async def _find(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    group = await group_or_404(request, request.path_params["group_id"])
    node_id = request.path_params["node_id"]
    for node in await store(request).list_nodes(group["id"]):
        if node["id"] == node_id:
            return group, node
    raise not_found("node", node_id)


async def get_node(request: Request) -> Response:
    """Return one node."""
    await authenticate(request)
    group, node = await _find(request)
    return json({"item": node_view(node, request, group["id"])})


async def delete_node(request: Request) -> Response:
    """Forget a node; a node still running reconnects and reappears."""
    principal = await authenticate(request)
    group, node = await _find(request)
    await require_group_write(request, principal, group)
    await store(request).delete_node(group["id"], node["id"])
    return no_content()
