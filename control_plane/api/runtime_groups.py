"""Runtime groups (control planes): create, list, read, update, delete."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import (
    authenticate,
    group_or_404,
    json,
    no_content,
    query_int,
    read_body,
    require_group_write,
    settings,
    store,
)
from control_plane.api.vocabulary import CLUSTER_TYPES_IN, HYBRID, Vocabulary
from control_plane.config_cache import now_iso
from shared.errors import InvalidParameter, ValidationError

CREATE_FIELDS = {
    "name",
    "description",
    "cluster_type",
    "auth_type",
    "cloud_gateway",
    "proxy_urls",
    "labels",
}
UPDATE_FIELDS = {"name", "description", "auth_type", "proxy_urls", "labels"}
AUTH_TYPES = ("pinned_client_certs", "pki_client_certs")
LABEL_VALUE = re.compile(r"^[a-z0-9A-Z]([a-z0-9A-Z\-._]*[a-z0-9A-Z]+)?$")
LABEL_RESERVED = ("kong", "konnect", "mesh", "kic", "_")
MAX_LABELS = 50


def _check_labels(value: Any, errors: list[InvalidParameter]) -> None:
    if not isinstance(value, dict):
        errors.append(InvalidParameter("labels", "type", "expected an object"))
        return
    if len(value) > MAX_LABELS:
        errors.append(InvalidParameter("labels", "max_items", f"at most {MAX_LABELS}"))
    for key, item in value.items():
        field = f"labels.{key}"
        if not 1 <= len(key) <= 63:
            errors.append(InvalidParameter(field, "key", "keys are 1 to 63 characters"))
        elif key.lower().startswith(LABEL_RESERVED):
            errors.append(
                InvalidParameter(
                    field, "key", "keys cannot start with kong, konnect, mesh, kic or _"
                )
            )
        if not isinstance(item, str) or not 1 <= len(item) <= 63:
            errors.append(
                InvalidParameter(field, "value", "values are strings of 1 to 63 chars")
            )
        elif not LABEL_VALUE.match(item):
            errors.append(
                InvalidParameter(
                    field,
                    "pattern",
                    "values are letters and digits, with - . _ inside",
                )
            )


def _check_proxy_urls(value: Any, errors: list[InvalidParameter]) -> None:
    if not isinstance(value, list) or len(value) > 5:
        errors.append(InvalidParameter("proxy_urls", "type", "a list of at most 5"))
        return
    for i, item in enumerate(value):
        field = f"proxy_urls[{i}]"
        ok = (
            isinstance(item, dict)
            and set(item) == {"host", "port", "protocol"}
            and isinstance(item["host"], str)
            and isinstance(item["port"], int)
            and not isinstance(item["port"], bool)
            and 0 < item["port"] < 65536
            and item["protocol"] in ("http", "https")
        )
        if not ok:
            errors.append(
                InvalidParameter(field, "type", "expected {host, port, protocol}")
            )


def check_group_body(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """Validate a create or update body; return the fields to store."""
    allowed = CREATE_FIELDS if create else UPDATE_FIELDS
    errors = [
        InvalidParameter(key, "unknown_field", "unknown field")
        for key in body
        if key not in allowed
    ]
    if create and "name" not in body:
        errors.append(InvalidParameter("name", "required", "is a required field"))
    if "name" in body and (
        not isinstance(body["name"], str) or not 1 <= len(body["name"].strip()) <= 256
    ):
        errors.append(InvalidParameter("name", "type", "a string of 1 to 256 chars"))
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 2048:
        errors.append(
            InvalidParameter("description", "type", "a string of at most 2048 chars")
        )
    cluster_type = body.get("cluster_type", "CLUSTER_TYPE_HYBRID")
    if not isinstance(cluster_type, str) or cluster_type not in CLUSTER_TYPES_IN:
        known = ", ".join(sorted(CLUSTER_TYPES_IN))
        errors.append(
            InvalidParameter("cluster_type", "enum", f"must be one of: {known}")
        )
    auth_type = body.get("auth_type", AUTH_TYPES[0])
    if not isinstance(auth_type, str) or auth_type not in AUTH_TYPES:
        errors.append(
            InvalidParameter(
                "auth_type", "enum", f"must be one of: {', '.join(AUTH_TYPES)}"
            )
        )
    if body.get("cloud_gateway", False) is not False:
        errors.append(
            InvalidParameter("cloud_gateway", "enum", "Portico has no cloud gateways")
        )
    if "labels" in body:
        _check_labels(body["labels"], errors)
    if "proxy_urls" in body:
        _check_proxy_urls(body["proxy_urls"], errors)
    if errors:
        raise ValidationError("the runtime group is not valid", errors)
    fields = {
        k: v for k, v in body.items() if k not in ("cluster_type", "cloud_gateway")
    }
    if "cluster_type" in body:
        fields["cluster_type"] = CLUSTER_TYPES_IN[body["cluster_type"]]
    return fields


def _matches(group: dict[str, Any], params: dict[str, str], vocab: Vocabulary) -> bool:
    cluster_type = vocab.cluster_type(group["cluster_type"])
    for key, value in params.items():
        if key in ("filter[name]", "filter[name][eq]") and group["name"] != value:
            return False
        if key == "filter[name][neq]" and group["name"] == value:
            return False
        if key == "filter[name][contains]" and value not in group["name"]:
            return False
        if key in ("filter[id]", "filter[id][eq]") and group["id"] != value:
            return False
        if key == "filter[id][oeq]" and group["id"] not in value.split(","):
            return False
        if key in ("filter[cluster_type]", "filter[cluster_type][eq]"):
            if group["cluster_type"] != CLUSTER_TYPES_IN.get(value, value):
                return False
        if key == "filter[cluster_type][neq]" and cluster_type == value:
            return False
        if key == "labels" and not _labels_match(group["labels"], value):
            return False
    return True


def _labels_match(labels: dict[str, str], query: str) -> bool:
    for term in filter(None, (t.strip() for t in query.split(","))):
        key, sep, value = term.partition(":")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


FILTERS = {
    "filter[name]",
    "filter[name][eq]",
    "filter[name][neq]",
    "filter[name][contains]",
    "filter[id]",
    "filter[id][eq]",
    "filter[id][oeq]",
    "filter[cluster_type]",
    "filter[cluster_type][eq]",
    "filter[cluster_type][neq]",
    "labels",
}


async def list_groups(request: Request, vocab: Vocabulary) -> Response:
    """List runtime groups, paged and filtered like Konnect."""
    await authenticate(request)
    params = dict(request.query_params)
    unknown = [k for k in params if k.startswith("filter[") and k not in FILTERS]
    if unknown:
        raise ValidationError(
            "unsupported filter",
            [
                InvalidParameter(k, "unknown_filter", "unsupported filter")
                for k in unknown
            ],
        )
    size = query_int(request, "page[size]", 100, 1, 1000)
    number = query_int(request, "page[number]", 1, 1, 1_000_000)
    groups = [
        g for g in await store(request).list_groups() if _matches(g, params, vocab)
    ]
    sort = params.get("sort", "created_at")
    descending = sort.startswith("-") or sort.endswith(" desc")
    field = sort.lstrip("-").split(" ")[0]
    if field not in ("created_at", "name", "updated_at"):
        raise ValidationError(
            "unsupported sort",
            [
                InvalidParameter(
                    "sort", "enum", "sort by created_at, updated_at or name"
                )
            ],
        )
    groups.sort(key=lambda g: (g[field], g["id"]), reverse=descending)
    page = groups[(number - 1) * size : number * size]
    cfg = settings(request)
    return json(
        {
            "data": [vocab.group_view(g, cfg) for g in page],
            "meta": {"page": {"number": number, "size": size, "total": len(groups)}},
        }
    )


async def create_group(request: Request, vocab: Vocabulary) -> Response:
    """Create a runtime group."""
    principal = await authenticate(request)
    principal.require_admin()
    fields = check_group_body(await read_body(request, None), create=True)
    stamp = now_iso()
    group = {
        "id": str(uuid.uuid4()),
        "name": fields["name"],
        "description": fields.get("description", ""),
        "labels": fields.get("labels", {}),
        "cluster_type": fields.get("cluster_type", HYBRID),
        "auth_type": fields.get("auth_type", "pinned_client_certs"),
        "proxy_urls": fields.get("proxy_urls", []),
        "created_at": stamp,
        "updated_at": stamp,
    }
    created = await store(request).create_group(group)
    return json(vocab.group_view(created, settings(request)), 201)


async def get_group(request: Request, vocab: Vocabulary) -> Response:
    """Return one runtime group."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    return json(vocab.group_view(group, settings(request)))


async def update_group(request: Request, vocab: Vocabulary) -> Response:
    """Change a runtime group's name, description, labels or auth settings."""
    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    await require_group_write(request, principal, group)
    body = await read_body(request, None)
    if "cluster_type" in body:
        raise ValidationError(
            "the cluster type of a runtime group cannot change",
            [
                InvalidParameter(
                    "cluster_type", "immutable", "cannot change after creation"
                )
            ],
        )
    fields = check_group_body(body, create=False)
    updated = await store(request).update_group(group["id"], fields)
    return json(vocab.group_view(updated, settings(request)))


async def delete_group(request: Request, vocab: Vocabulary) -> Response:
    """Delete a runtime group that is no composite's member."""
    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    await require_group_write(request, principal, group)
    if group["cluster_type"] == "composite" and principal.role != "organization_admin":
        principal.require_admin()
    await store(request).delete_group(group["id"])
    return no_content()
