"""Serve the control plane's browser UI: static files under `/ui/`.

The UI is a single page written in plain HTML, CSS and JavaScript modules; it
talks to the admin API with the bearer token the user pastes in, so the files
themselves need no authentication. They are read once, when the routes are
built, and served from memory with an explicit content type each: browsers
refuse to run a JavaScript module served as anything else, and the system's
MIME table differs between machines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}

# The page runs only its own scripts and talks only to its own origin, so an
# injected snippet (say, a runtime group named like a tag) can do nothing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class StaticFile:
    """One file of the UI, held in memory with its content type and ETag."""

    body: bytes
    content_type: str
    etag: str


def load_files(root: Path = STATIC) -> dict[str, StaticFile]:
    """Read every servable file under `root`, keyed by its URL path below `/ui/`."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or content_type is None:
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.relative_to(root).as_posix()] = StaticFile(body, content_type, etag)
    return files


def ui_routes() -> list[BaseRoute]:
    """Return the routes serving the UI under `/ui/` and redirecting `/` to it."""
    files = load_files()

    async def serve(request: Request) -> Response:
        name = request.path_params["path"] or "index.html"
        found = files.get(name)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        # Revalidate on every load so a new release shows at once, yet cheaply.
        headers = {"ETag": found.etag, "Cache-Control": "no-cache", **SECURITY_HEADERS}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.content_type, headers=headers)

    async def to_ui(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    # Static files are not part of the admin API, so its OpenAPI document
    # leaves them out.
    return [
        Route("/", to_ui, methods=["GET"], include_in_schema=False),
        Route("/ui", to_ui, methods=["GET"], include_in_schema=False),
        Route("/ui/{path:path}", serve, methods=["GET"], include_in_schema=False),
    ]
