"""What every admin API endpoint shares: bodies, errors, auth, responses."""

from __future__ import annotations

import json as std_json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from control_plane.auth import Principal, TokenCache
from control_plane.problems import Problem, bad_field, not_found
from control_plane.settings import Settings
from control_plane.store.base import Store
from shared.errors import (
    InvalidParameter,
    PorticoError,
    ReferenceError_,
    ValidationError,
)
from shared.forms import form_to_body
from shared.jsonbody import loads_strict

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY = 4 * 1024 * 1024
# Deeper JSON values are refused: the JSON encoder stops at 254 levels.
MAX_DEPTH = 32


def json(data: Any, status: int = 200) -> Response:
    """Return `data` as a JSON response."""
    return Response(orjson.dumps(data), status, media_type="application/json")


def no_content() -> Response:
    """Return an empty 204 response."""
    return Response(status_code=204)


def store(request: Request) -> Store:
    """Return the store the app serves."""
    result: Store = request.app.state.store
    return result


def settings(request: Request) -> Settings:
    """Return the control plane's settings."""
    result: Settings = request.app.state.settings
    return result


def problem_response(request: Request, problem: Problem) -> Response:
    """Render a refusal as application/problem+json."""
    instance = f"portico:trace:{uuid.uuid4().hex}"
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    body = problem.body(instance)
    try:
        content = orjson.dumps(body)
    except TypeError:
        # A detail that echoes text orjson cannot encode (such as a lone
        # surrogate) is escaped instead of failing the answer.
        content = std_json.dumps(body, ensure_ascii=True, default=str).encode()
    return Response(
        content,
        problem.status,
        headers=headers,
        media_type="application/problem+json",
    )


def as_problem(exc: Exception) -> Problem:
    """Map any error raised while serving a request to a refusal."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ValidationError):
        return Problem(400, exc.detail, list(exc.invalid_parameters))
    if isinstance(exc, ReferenceError_):
        reason = str(exc)
        return Problem(
            400, reason, [InvalidParameter(exc.field, "foreign_key", reason)]
        )
    if isinstance(exc, HTTPException):
        return Problem(exc.status_code, str(exc.detail))
    if isinstance(exc, PorticoError):
        return Problem(400, str(exc))
    # A bug: uvicorn logs it with its traceback once this answer is sent.
    return Problem(500, "an unexpected error occurred; see the control plane log")


async def handle_error(request: Request, exc: Exception) -> Response:
    """Answer any error raised by an endpoint as problem+json."""
    return problem_response(request, as_problem(exc))


async def authenticate(request: Request) -> Principal:
    """Return the caller of a /v2 request, or refuse with 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    cache: TokenCache = request.app.state.tokens
    principal = await cache.principal(token.strip())
    if principal is None:
        raise Problem(401, "the bearer token is not valid or was revoked")
    return principal


async def read_body(request: Request, type_name: str | None) -> dict[str, Any]:
    """Decode a JSON or form body (Kong's conventions) into a dict.

    `type_name` names the entity type whose schema coerces form values; None
    decodes nesting only.
    """
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Problem(413, f"request bodies are limited to {MAX_BODY} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if not raw.strip():
        return {}
    if content_type == "application/x-www-form-urlencoded":
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise bad_field("@body", "encoding", "the form body is not UTF-8") from exc
        pairs = parse_qsl(text, keep_blank_values=True)
        for key, _ in pairs:
            if key.count(".") + key.count("[") > MAX_DEPTH:
                reason = f"form keys are nested at most {MAX_DEPTH} levels deep"
                raise bad_field(key[:64], "depth", reason)
        return form_to_body(pairs, type_name)
    if content_type and not content_type.endswith("json"):
        raise Problem(
            415,
            f"unsupported content type '{content_type}': send application/json or "
            "application/x-www-form-urlencoded",
        )
    body = loads_strict(raw)
    # JSON escapes can spell lone surrogates, which are no Unicode text and
    # cannot be stored or sent back; deep nesting would exhaust the encoders.
    _check_text(body, "")
    if not isinstance(body, dict):
        raise Problem(
            400,
            "the request body must be a JSON object",
            [InvalidParameter("@body", "type", "expected an object")],
        )
    return body


def _check_text(value: Any, path: str, depth: int = 0) -> None:
    """Refuse strings that are no Unicode text and values nested too deeply."""
    if depth > MAX_DEPTH:
        reason = f"values are nested at most {MAX_DEPTH} levels deep"
        raise bad_field(path or "@body", "depth", reason)
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            reason = "a string holds a lone surrogate escape (not Unicode text)"
            raise bad_field(path or "@body", "encoding", reason) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            _check_text(key, inner, depth + 1)
            _check_text(item, inner, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{path}[{index}]", depth + 1)


def query_bool(request: Request, name: str) -> bool:
    """Return a boolean query parameter (`true` or `false`; absent is false)."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return False
    value = text.lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_field(name, "type", "expected true or false")
    return value in ("true", "1")


async def group_or_404(request: Request, group_id: str) -> dict[str, Any]:
    """Return the addressed runtime group, or refuse with 404."""
    group = await store(request).get_group(group_id)
    if group is None:
        raise not_found("runtime group", group_id)
    return group


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Return an integer query parameter, refusing values out of range."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        reason = f"must be an integer between {low} and {high}"
        raise Problem(
            400, f"invalid {name}: {reason}", [InvalidParameter(name, "range", reason)]
        )
    return int(text)


async def require_group_write(
    request: Request, principal: Principal, group: dict[str, Any]
) -> None:
    """Refuse unless the caller may change `group`.

    A runtime group admin may change the groups it is scoped to, and a
    composite whose members are all among them.
    """
    if principal.role != "runtime_group_admin" or group["id"] in principal.groups:
        principal.require_write([group["id"]])
        return
    members = await store(request).members_of(group["id"])
    if group["cluster_type"] == "composite" and members:
        principal.require_write(members)
    else:
        principal.require_write([group["id"]])
