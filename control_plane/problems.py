"""Errors the admin API answers with, as application/problem+json.

Every refusal the control plane makes on its own (not found, conflict,
forbidden) is a :exc:`Problem`; schema errors from the shared model arrive as
:exc:`shared.errors.ValidationError` and are rendered the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidParameter, PorticoError

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


@dataclass
class Problem(PorticoError):
    """Raised to refuse a request with `status` and an explanation."""

    status: int
    detail: str
    invalid_parameters: list[InvalidParameter] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail

    def body(self, instance: str) -> dict[str, Any]:
        """Return the problem+json document for this refusal."""
        title = TITLES.get(self.status, "Error")
        doc: dict[str, Any] = {
            "status": self.status,
            "title": title,
            "type": f"https://portico.dev/problems/{title.lower().replace(' ', '-')}",
            "instance": instance,
            "detail": self.detail,
        }
        if self.status == 400:
            doc["invalid_parameters"] = [p.as_dict() for p in self.invalid_parameters]
        doc.update(self.extra)
        return doc


def not_found(kind: str, key: str) -> Problem:
    """Return the refusal for a missing resource."""
    return Problem(404, f"{kind} '{key}' not found")


def bad_field(name: str, rule: str, reason: str) -> Problem:
    """Return a 400 naming one offending field."""
    return Problem(
        400, f"invalid {name}: {reason}", [InvalidParameter(name, rule, reason)]
    )
