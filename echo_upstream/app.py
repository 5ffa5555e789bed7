"""Answer every request with a description of itself (a raw ASGI app).

Paths:

- `/status/<code>`: answer with that status;
- `/delay/<ms>`: wait, then echo (for timeout tests);
- `/stream/<n>`: a chunked response of n JSON lines;
- `/bytes/<n>`: n bytes of body with a Content-Length, sent in pieces;
- `/reply`: answer the request's body as the response's, with the query's
  `type` as Content-Type (default `application/json`), its `encoding` as
  Content-Encoding (the body is sent as it came), and `chunked=1` for a
  chunked body in pieces instead of a Content-Length;
- anything else, `/request/...` included: echo the request as JSON, or as
  an HTML page when the client's Accept prefers text/html.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PIECE = 64 * 1024


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _query(raw: bytes) -> dict[str, str | list[str]]:
    query: dict[str, str | list[str]] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        known = query.get(name)
        if known is None:
            query[name] = value
        elif isinstance(known, list):
            known.append(value)
        else:
            query[name] = [known, value]
    return query


def prefers_html(accept: str) -> bool:
    """Tell whether an Accept header ranks text/html above JSON."""
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = [part.strip() for part in item.split(";")]
        weight = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0
        best[media.lower()] = max(weight, best.get(media.lower(), 0.0))
    html_weight = best.get("text/html", 0.0)
    json_weight = max(best.get("application/json", 0.0), best.get("*/*", 0.0))
    return html_weight > 0 and html_weight >= json_weight


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


def describe(scope: Scope, body: bytes) -> dict[str, Any]:
    """Return the echo of a request: method, url, path, query, headers, body."""
    headers = _headers(scope)
    query = scope.get("query_string", b"")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    host = headers.get("host", "")
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    if query:
        url += "?" + query.decode("latin-1")
    client = scope.get("client")
    return {
        "method": scope["method"],
        "url": url,
        "path": path,
        "query": _query(query),
        "headers": headers,
        "body": body.decode("utf-8", "replace"),
        "client": {"ip": client[0], "port": client[1]} if client else None,
    }


def _page(echo: dict[str, Any]) -> bytes:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in echo["headers"].items()
    )
    title = html.escape(f"{echo['method']} {echo['path']}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{html.escape(echo['url'])}</p><h2>Headers</h2><table>{rows}</table>"
        f"<h2>Body</h2><pre>{html.escape(echo['body'])}</pre></body></html>"
    ).encode()


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _number(segment: str) -> int | None:
    return int(segment) if segment.isdigit() and len(segment) < 9 else None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request; see the module docstring for the paths."""
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")
    action = parts[0] if len(parts) == 2 else ""
    number = _number(parts[1]) if len(parts) == 2 else None
    body = await _read_body(receive)

    if scope["path"] == "/reply":
        await _reply(send, body, _query(scope.get("query_string", b"")))
        return
    if action == "status" and number is not None and 200 <= number <= 599:
        await _respond(send, number, orjson.dumps({"status": number}))
        return
    if action == "stream" and number is not None:
        await _stream(send, number)
        return
    if action == "bytes" and number is not None:
        await _bytes(send, number)
        return
    if action == "delay" and number is not None:
        await asyncio.sleep(number / 1000)

    echo = describe(scope, body)
    if prefers_html(_headers(scope).get("accept", "")):
        await _respond(send, 200, _page(echo), b"text/html; charset=utf-8")
    else:
        await _respond(send, 200, orjson.dumps(echo))


async def _reply(send: Send, body: bytes, query: dict[str, str | list[str]]) -> None:
    def option(name: str, default: str = "") -> str:
        value = query.get(name, default)
        return value if isinstance(value, str) else value[-1]

    headers = [(b"content-type", option("type", "application/json").encode("latin-1"))]
    if option("encoding"):
        headers.append((b"content-encoding", option("encoding").encode("latin-1")))
    chunked = option("chunked") == "1"
    if not chunked:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if not chunked:
        await send({"type": "http.response.body", "body": body})
        return
    for start in range(0, len(body), _PIECE):
        piece = body[start : start + _PIECE]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _stream(send: Send, count: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/x-ndjson")],
        }
    )
    for index in range(count):
        line = orjson.dumps({"chunk": index}) + b"\n"
        await send({"type": "http.response.body", "body": line, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _bytes(send: Send, size: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode()),
            ],
        }
    )
    piece = b"x" * _PIECE
    remaining = size
    while remaining > 0:
        chunk = piece[: min(remaining, _PIECE)]
        remaining -= len(chunk)
        await send(
            {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
        )
    if size == 0:
        await send({"type": "http.response.body", "body": b""})
