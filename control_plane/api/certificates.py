"""Pinned data plane client certificates of a runtime group.

Composites accept them too: pinning certificates is one of the two things a
read-only composite allows (the other is connecting data plane nodes).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.responses import Response

from control_plane.api.common import (
    authenticate,
    group_or_404,
    json,
    no_content,
    read_body,
    require_group_write,
    store,
)
from control_plane.problems import Problem, bad_field, not_found
from shared.errors import InvalidParameter, ValidationError

logger = logging.getLogger(__name__)


def _parse_pem(pem: Any) -> tuple[str, str]:
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise bad_field("cert", "pem", "a PEM-encoded X.509 certificate is required")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise bad_field("cert", "pem", f"not a valid PEM certificate: {exc}") from exc
    normalized = cert.public_bytes(Encoding.PEM).decode()
    return normalized, cert.fingerprint(hashes.SHA256()).hex()


def cert_view(row: dict[str, Any]) -> dict[str, Any]:
    """Return a pinned certificate as the API shows it."""
    return {
        key: row[key] for key in ("id", "cert", "title", "created_at", "updated_at")
    }


async def _pin(
    request: Request, group_id: str, pem: Any, title: str | None
) -> dict[str, Any]:
    normalized, digest = _parse_pem(pem)
    for known in await store(request).pinned_certificates(group_id):
        if known["fingerprint"] == digest:
            raise Problem(409, f"this certificate is already pinned as {known['id']}")
    now = int(time.time())
    row = {
        "id": str(uuid.uuid4()),
        "cert": normalized,
        "title": title,
        "fingerprint": digest,
        "created_at": now,
        "updated_at": now,
    }
    await store(request).add_certificate(group_id, row)
    return row


async def _refresh(request: Request) -> None:
    # Let the cluster listener trust a change at once rather than at its next
    # poll, so that a node started right after pinning connects first time.
    listener = getattr(request.app.state, "listener", None)
    if listener is None:
        return
    try:
        await listener.refresh_certificates()
    except Exception:
        # The pin is committed; the listener's own poll picks it up later.
        logger.warning("cluster listener could not reload pinned certificates")


async def list_certificates(request: Request) -> Response:
    """List a group's pinned client certificates."""
    await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    rows = await store(request).pinned_certificates(group["id"])
    return json(
        {"items": [cert_view(r) for r in rows], "page": {"total_count": len(rows)}}
    )


async def create_certificate(request: Request) -> Response:
    """Pin a client certificate (PEM) to a group."""
    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    await require_group_write(request, principal, group)
    body = await read_body(request, None)
    unknown = [k for k in body if k not in ("cert", "title")]
    if unknown:
        raise ValidationError(
            "unknown fields",
            [InvalidParameter(k, "unknown_field", "unknown field") for k in unknown],
        )
    title = body.get("title")
    if title is not None and not isinstance(title, str):
        raise bad_field("title", "type", "expected a string")
    row = await _pin(request, group["id"], body.get("cert"), title)
    await _refresh(request)
    return json({"item": cert_view(row)}, 201)


async def generate_certificate(request: Request) -> Response:
    """Generate a key pair and certificate, pin it, and show the key once."""
    from control_plane.pki import generate_client_certificate

    principal = await authenticate(request)
    group = await group_or_404(request, request.path_params["group_id"])
    await require_group_write(request, principal, group)
    body = await read_body(request, None)
    title = body.get("title") or f"{group['name']} data plane"
    if not isinstance(title, str):
        raise bad_field("title", "type", "expected a string")
    cert_pem, key_pem = generate_client_certificate(f"portico-dp-{group['name']}")
    row = await _pin(request, group["id"], cert_pem, title)
    await _refresh(request)
    return json({"item": cert_view(row), "private_key": key_pem}, 201)


async def _find(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    group = await group_or_404(request, request.path_params["group_id"])
    cert_id = request.path_params["cert_id"]
    for row in await store(request).pinned_certificates(group["id"]):
        if row["id"] == cert_id:
            return group, row
    raise not_found("dp-client-certificate", cert_id)


async def get_certificate(request: Request) -> Response:
    """Return one pinned certificate."""
    await authenticate(request)
    _, row = await _find(request)
    return json({"item": cert_view(row)})


async def delete_certificate(request: Request) -> Response:
    """Unpin a certificate; nodes using it can no longer connect."""
    principal = await authenticate(request)
    group, row = await _find(request)
    await require_group_write(request, principal, group)
    await store(request).delete_certificate(group["id"], row["id"])
    await _refresh(request)
    return no_content()
