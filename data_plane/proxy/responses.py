"""Serialize the responses Portico writes itself: errors, 100 Continue.

Error bodies have Kong's shape, `{"message": "..."}`, in JSON.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from data_plane import __version__
from data_plane.plugins.base import JSON, LocalResponse

SERVER: Final = f"portico/{__version__}".encode()
VIA: Final = b"Via: 1.1 " + SERVER + b"\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

NO_ROUTE: Final = LocalResponse.message(404, "no Route matched with those values")
NO_SERVICE: Final = LocalResponse.message(503, "no Service found with those values")
BAD_REQUEST: Final = LocalResponse.message(400, "Bad request")
TOO_LARGE: Final = LocalResponse.message(494, "Request header or cookie too large")
BAD_GATEWAY: Final = LocalResponse.message(
    502, "An invalid response was received from the upstream server"
)
GATEWAY_TIMEOUT: Final = LocalResponse.message(504, "The upstream server is timing out")
INTERNAL_ERROR: Final = LocalResponse.message(500, "An unexpected error occurred")

_JSON_LINE: Final = f"Content-Type: {JSON}\r\n".encode()

REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
REASONS[494] = b"Request Header Or Cookie Too Large"


def reason(status: int) -> bytes:
    """Return the reason phrase for `status`."""
    return REASONS.get(status, b"Unknown")


def serialize(
    response: LocalResponse,
    *,
    close: bool,
    head: bool,
    latency_ms: int,
    extra: bytes = b"",
) -> bytes:
    """Return the bytes of `response`; without the body when `head` is set.

    `extra` is more header lines, encoded, that plugins add to the response.
    """
    lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, reason(response.status))]
    content_type = response.content_type
    if content_type == JSON:
        lines.append(_JSON_LINE)
    elif content_type:
        lines.append(f"Content-Type: {content_type}\r\n".encode("latin-1"))
    lines.append(b"Content-Length: %d\r\n" % len(response.body))
    if close:
        lines.append(b"Connection: close\r\n")
    for name, value in response.headers:
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if extra:
        lines.append(extra)
    lines.append(b"Server: " + SERVER + b"\r\n")
    lines.append(b"X-Portico-Response-Latency: %d\r\n\r\n" % latency_ms)
    if not head:
        lines.append(response.body)
    return b"".join(lines)
