"""The configuration a group's data plane nodes should run: hash and version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import authenticate, group_or_404, json, store
from control_plane.hub import SnapshotHub
from control_plane.problems import not_found


def _published_at(request: Request, group: dict[str, Any]) -> str:
    """Return when the group's current snapshot was published, ISO-8601."""
    hub: SnapshotHub = request.app.state.hub
    stamp = hub.published_at(group["id"])
    if stamp is None:
        return str(group["updated_at"])
    moment = datetime.fromtimestamp(stamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def expected_config_hash(request: Request) -> Response:
    """Return the hash of the snapshot the group's nodes should run."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    snapshot = await store(request).expected_snapshot(group["id"])
    if snapshot is None:
        raise not_found("expected config of runtime group", group["id"])
    return json(
        {
            "expected_hash": snapshot.hash,
            "created_at": group["created_at"],
            "updated_at": _published_at(request, group),
            "version": snapshot.version,
        }
    )


async def expected_config_version(request: Request) -> Response:
    """Return the version of the snapshot the group's nodes should run."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    snapshot = await store(request).expected_snapshot(group["id"])
    if snapshot is None:
        raise not_found("expected config of runtime group", group["id"])
    return json(
        {"expected_config_version": snapshot.version, "created_at": group["created_at"]}
    )
