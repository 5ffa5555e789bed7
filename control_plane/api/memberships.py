"""Composite memberships, member status and the composite's merge state."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import (
    authenticate,
    group_or_404,
    json,
    no_content,
    query_bool,
    query_int,
    read_body,
    require_group_write,
    settings,
    store,
)
from control_plane.api.vocabulary import Vocabulary
from control_plane.store.base import CompositeStatus
from shared.errors import InvalidParameter, ValidationError


def member_ids(body: dict[str, Any]) -> list[str]:
    """Return the ids of a `{"members": [{"id": ...}]}` body, or refuse it."""
    errors = [
        InvalidParameter(key, "unknown_field", "unknown field")
        for key in body
        if key != "members"
    ]
    members = body.get("members")
    if not isinstance(members, list):
        errors.append(InvalidParameter("members", "required", "a list of {id} objects"))
        raise ValidationError("the membership body is not valid", errors)
    ids = []
    for i, item in enumerate(members):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            errors.append(
                InvalidParameter(f"members[{i}].id", "required", "a group id")
            )
            continue
        errors.extend(
            InvalidParameter(f"members[{i}].{key}", "unknown_field", "unknown field")
            for key in item
            if key != "id"
        )
        ids.append(item["id"])
    if errors:
        raise ValidationError("the membership body is not valid", errors)
    return ids


def status_view(status: CompositeStatus, vocab: Vocabulary) -> dict[str, Any]:
    """Return a merge state in the shape of this URL family."""
    view = {
        "id": status.group_id,
        "created_at": status.created_at,
        "updated_at": status.updated_at,
        "conflicts": [c.as_dict() for c in status.conflicts],
        "state": vocab.composite_states[status.state],
    }
    return {"item": view} if vocab.wraps_status else view


async def list_members(request: Request, vocab: Vocabulary) -> Response:
    """List the members of a composite runtime group."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    ids = await store(request).members_of(group["id"])
    size = query_int(request, "page[size]", 100, 1, 1000)
    if vocab.wraps_status:
        start = query_int(request, "page[after]", 0, 0, 1_000_000)
        number = start // size + 1
    else:
        number = query_int(request, "page[number]", 1, 1, 1_000_000)
        start = (number - 1) * size
    page = []
    for member_id in ids[start : start + size]:
        member = await store(request).get_group(member_id)
        if member is not None:
            page.append(vocab.group_view(member, settings(request)))
    if vocab.wraps_status:
        following = start + size if start + size < len(ids) else None
        query = urlencode({"page[size]": size, "page[after]": following})
        next_page = None if following is None else f"{request.url.path}?{query}"
        meta: dict[str, Any] = {
            "next": next_page,
            "size": size,
            "total": len(ids),
        }
    else:
        meta = {"number": number, "size": size, "total": len(ids)}
    return json({"data": page, "meta": {"page": meta}})


async def change_members(
    request: Request, vocab: Vocabulary, operation: str = "replace"
) -> Response:
    """Add, remove or replace members; `?dry_run=true` previews the merge."""
    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    ids = member_ids(await read_body(request, None))
    await require_group_write(request, principal, group)
    for member_id in ids:
        member = await store(request).get_group(member_id)
        if member is not None:
            await require_group_write(request, principal, member)
    dry_run = query_bool(request, "dry_run")
    status = await store(request).change_members(
        group["id"], operation, ids, dry_run=dry_run
    )
    if not dry_run:
        return no_content()
    preview = status_view(status, vocab)
    body = preview.get("item", preview)
    return json(dict(body, dry_run=True))


async def member_status(request: Request, vocab: Vocabulary) -> Response:
    """Tell whether a runtime group is a member of any composite."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    return json({"is_member": bool(await store(request).composites_of(group["id"]))})


async def composite_status(request: Request, vocab: Vocabulary) -> Response:
    """Report a composite's merge state (OK, CONFLICT) with its conflicts."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    if group["cluster_type"] != "composite":
        raise ValidationError(
            f"runtime group '{group['name']}' is not a composite runtime group",
            [InvalidParameter("id", "type", "not a composite runtime group")],
        )
    status = await store(request).composite_status(group["id"])
    return json(status_view(status, vocab))
