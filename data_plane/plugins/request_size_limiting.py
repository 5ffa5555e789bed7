"""Run the request-size-limiting plugin the way Kong does.

A body over `allowed_payload_size` `size_unit`s is refused with 413
"Request size limit exceeded" (417 when the client asked to
`Expect: 100-continue`). A request with a Content-Length is judged by it
before any of the body is read. One without (a chunked body) streams to the
upstream as usual and is cut off with the same answer once it grows past
the limit, unless the upstream has begun answering, in which case the
connection is closed. With `require_content_length`, a request with neither
a Content-Length nor a chunked body gets 411 "A valid Content-Length header
is required", a GET included, as in Kong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from data_plane.plugins.base import ConfigIndex, Deferred, LocalResponse, RequestContext

PRIORITY: Final = 951

UNITS = {"bytes": 1, "kilobytes": 1024, "megabytes": 1024 * 1024}

_TOO_LARGE = "Request size limit exceeded"


class RequestSizeLimiting:
    """One request-size-limiting plugin entity, compiled."""

    name = "request-size-limiting"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        unit = UNITS[str(config.get("size_unit") or "megabytes")]
        size = config.get("allowed_payload_size")
        self._limit = (128 if size is None else int(size)) * unit
        self._require_length = bool(config.get("require_content_length"))
        self._too_large = LocalResponse.message(413, _TOO_LARGE)
        self._expectation_failed = LocalResponse.message(417, _TOO_LARGE)
        self._length_required = LocalResponse.message(
            411, "A valid Content-Length header is required"
        )

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Refuse a body over the limit, now or as it comes."""
        headers = ctx.headers
        expect = headers.get("expect")
        too_large = (
            self._expectation_failed
            if expect is not None and expect.strip().lower() == "100-continue"
            else self._too_large
        )
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            return too_large if int(length) > self._limit else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if self._require_length and not chunked:
            return self._length_required
        if chunked and ctx.request is not None:
            over = ctx.request.limit_body(self._limit, too_large)
            return too_large if over else None
        return None
