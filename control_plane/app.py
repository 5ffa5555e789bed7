"""The admin API application: every route, assembled in one place."""

from __future__ import annotations

import functools
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from control_plane.api import (
    certificates,
    entities,
    memberships,
    nodes,
    openapi,
    runtime_groups,
    snapshots,
    tokens,
)
from control_plane.api.common import handle_error, json
from control_plane.api.vocabulary import VOCABULARIES, Vocabulary
from control_plane.auth import TokenCache
from control_plane.hub import SnapshotHub
from control_plane.settings import Settings
from control_plane.store.base import Commit, Store
from control_plane.ui import ui_routes
from shared.errors import PorticoError

GROUP = "/{group_id}"


async def health(request: Request) -> Response:
    """Answer readiness checks (no authentication)."""
    return json({"status": "ok"})


def _bound(endpoint: Any, **kwargs: Any) -> Any:
    bound = functools.partial(endpoint, **kwargs)
    functools.update_wrapper(bound, endpoint)
    return bound


def _group_routes(vocab: Vocabulary) -> list[BaseRoute]:
    base = vocab.prefix
    group = base + GROUP
    members = f"{group}/{vocab.members_path}"
    routes: list[BaseRoute] = [
        Route(base, _bound(runtime_groups.list_groups, vocab=vocab), methods=["GET"]),
        Route(base, _bound(runtime_groups.create_group, vocab=vocab), methods=["POST"]),
        Route(group, _bound(runtime_groups.get_group, vocab=vocab), methods=["GET"]),
        Route(
            group, _bound(runtime_groups.update_group, vocab=vocab), methods=["PATCH"]
        ),
        Route(
            group, _bound(runtime_groups.delete_group, vocab=vocab), methods=["DELETE"]
        ),
        Route(members, _bound(memberships.list_members, vocab=vocab), methods=["GET"]),
        Route(
            members, _bound(memberships.change_members, vocab=vocab), methods=["PUT"]
        ),
        Route(
            members + "/add",
            _bound(memberships.change_members, vocab=vocab, operation="add"),
            methods=["POST"],
        ),
        Route(
            members + "/remove",
            _bound(memberships.change_members, vocab=vocab, operation="remove"),
            methods=["POST"],
        ),
        Route(
            f"{group}/{vocab.member_status_path}",
            _bound(memberships.member_status, vocab=vocab),
            methods=["GET"],
        ),
        Route(
            f"{group}/{vocab.status_path}",
            _bound(memberships.composite_status, vocab=vocab),
            methods=["GET"],
        ),
    ]
    certs = f"{group}/dp-client-certificates"
    routes += [
        Route(certs, certificates.list_certificates, methods=["GET"]),
        Route(certs, certificates.create_certificate, methods=["POST"]),
        Route(certs + "/generate", certificates.generate_certificate, methods=["POST"]),
        Route(certs + "/{cert_id}", certificates.get_certificate, methods=["GET"]),
        Route(
            certs + "/{cert_id}", certificates.delete_certificate, methods=["DELETE"]
        ),
        Route(f"{group}/nodes", nodes.list_nodes, methods=["GET"]),
        Route(f"{group}/nodes/{{node_id}}", nodes.get_node, methods=["GET"]),
        Route(f"{group}/nodes/{{node_id}}", nodes.delete_node, methods=["DELETE"]),
        Route(
            f"{group}/expected-config-hash",
            snapshots.expected_config_hash,
            methods=["GET"],
        ),
        Route(
            f"{group}/expected-config-version",
            snapshots.expected_config_version,
            methods=["GET"],
        ),
    ]
    routes += entities.routes(f"{group}/core-entities")
    return routes


def build_routes() -> list[BaseRoute]:
    """Return every route of the admin API."""
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/v2/tokens", tokens.list_tokens, methods=["GET"]),
        Route("/v2/tokens", tokens.create_token, methods=["POST"]),
        Route("/v2/tokens/current", tokens.current_token, methods=["GET"]),
        Route("/v2/tokens/{token_id}", tokens.revoke_token, methods=["DELETE"]),
    ]
    for vocab in VOCABULARIES:
        routes += _group_routes(vocab)
    routes += [
        Route("/openapi.json", openapi.document, methods=["GET"]),
        Route("/v2/openapi.json", openapi.document, methods=["GET"]),
    ]
    routes += ui_routes()
    return routes


def publisher(hub: SnapshotHub) -> Any:
    """Return the commit callback that hands new snapshots to the hub."""

    def publish(commit: Commit) -> None:
        """Publish new snapshots and follow each composite's conflict state."""
        for snapshot in commit.snapshots:
            hub.publish(snapshot, commit.changes.get(snapshot.group_id))
        for group_id, held in commit.holds:
            hub.hold(group_id, held)
        for group_id in commit.forgotten:
            hub.forget(group_id)

    return publish


def create_app(settings: Settings, store: Store, hub: SnapshotHub) -> Starlette:
    """Build the admin API over an open store; commits publish to `hub`."""
    app = Starlette(
        routes=build_routes(),
        exception_handlers={
            PorticoError: handle_error,
            HTTPException: handle_error,
            Exception: handle_error,
        },
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.tokens = TokenCache(store)
    store.on_commit = publisher(hub)
    return app
