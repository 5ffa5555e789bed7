"""Exceptions raised by the shared model.

All of them derive from :exc:`PorticoError`::

    PorticoError
    ├── ValidationError      bad input: a field or a body breaks a rule
    ├── ReferenceError_      an entity points at one that does not exist
    └── ProtocolError        a cluster message cannot be parsed or is invalid

The control plane maps them to problem+json responses; the data plane maps
them to closed connections or rejected configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PorticoError(Exception):
    """Base class of every error Portico raises on bad input."""


@dataclass(frozen=True)
class InvalidParameter:
    """One offending field of a request body or query string."""

    field: str
    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "reason": self.reason}


@dataclass
class ValidationError(PorticoError):
    """Raised when input breaks a schema rule; names every offending field."""

    detail: str
    invalid_parameters: list[InvalidParameter] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.invalid_parameters:
            return self.detail
        fields = ", ".join(p.field for p in self.invalid_parameters)
        return f"{self.detail} ({fields})"


@dataclass
class ReferenceError_(PorticoError):
    """Raised when a foreign key names an entity that does not exist."""

    field: str
    entity_type: str
    key: str

    def __str__(self) -> str:
        return f"no {self.entity_type} with id or name '{self.key}' ({self.field})"


@dataclass
class ProtocolError(PorticoError):
    """Raised when a cluster message is malformed, unknown or out of order."""

    reason: str

    def __str__(self) -> str:
        return self.reason
