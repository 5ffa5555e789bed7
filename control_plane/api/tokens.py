"""Admin API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import authenticate, json, no_content, read_body, store
from control_plane.auth import (
    GROUP_ADMIN,
    KINDS,
    ROLES,
    TokenCache,
    new_token,
    public_token,
    token_record,
)
from control_plane.problems import Problem, not_found
from shared.errors import InvalidParameter, ValidationError

FIELDS = {"name", "role", "kind", "groups"}


async def list_tokens(request: Request) -> Response:
    """List unrevoked tokens (never the tokens themselves)."""
    principal = await authenticate(request)
    principal.require_admin()
    records = await store(request).list_tokens()
    return json({"data": [public_token(r) for r in records]})


async def current_token(request: Request) -> Response:
    """Return the token of the caller: who it is and what it may do."""
    principal = await authenticate(request)
    records = await store(request).list_tokens()
    record = next((r for r in records if r["id"] == principal.token_id), None)
    if record is None:
        # Revoked between authentication and this read.
        raise Problem(401, "the bearer token is not valid or was revoked")
    return json(public_token(record))


async def create_token(request: Request) -> Response:
    """Create a token with a role; the response is the only time it is shown."""
    principal = await authenticate(request)
    principal.require_admin()
    body = await read_body(request, None)
    errors = [
        InvalidParameter(k, "unknown_field", "unknown field")
        for k in body
        if k not in FIELDS
    ]
    name, role = body.get("name"), body.get("role", "viewer")
    kind, groups = body.get("kind", "personal"), body.get("groups", [])
    if not isinstance(name, str) or not name.strip():
        errors.append(InvalidParameter("name", "required", "is a required field"))
    if not isinstance(role, str) or role not in ROLES:
        errors.append(InvalidParameter("role", "enum", f"one of {', '.join(ROLES)}"))
    if not isinstance(kind, str) or kind not in KINDS:
        errors.append(InvalidParameter("kind", "enum", "personal or system"))
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        errors.append(
            InvalidParameter("groups", "type", "a list of group ids or names")
        )
        groups = []
    elif role == GROUP_ADMIN and not groups:
        errors.append(
            InvalidParameter("groups", "required", "runtime group admins need groups")
        )
    if errors:
        raise ValidationError("the token request is not valid", errors)
    known = await store(request).list_groups()
    by_key = {g["id"]: g["id"] for g in known} | {g["name"]: g["id"] for g in known}
    missing = [g for g in groups if g not in by_key]
    if missing:
        raise ValidationError(
            "unknown runtime groups",
            [InvalidParameter("groups", "exists", f"no group {g}") for g in missing],
        )
    token = new_token(kind)
    record = token_record(
        token, name=str(name), role=role, groups=[by_key[g] for g in groups]
    )
    record["kind"] = kind
    await store(request).create_token(record)
    return json(dict(public_token(record), token=token), 201)


async def revoke_token(request: Request) -> Response:
    """Revoke a token at once."""
    principal = await authenticate(request)
    principal.require_admin()
    token_id = request.path_params["token_id"]
    if token_id == principal.token_id:
        raise Problem(409, "a token cannot revoke itself; use another admin token")
    if not await store(request).revoke_token(token_id):
        raise not_found("token", token_id)
    cache: TokenCache = request.app.state.tokens
    cache.forget(token_id)
    return no_content()
