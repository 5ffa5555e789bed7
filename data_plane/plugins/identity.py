"""Tell the upstream who the consumer is, as Kong's authentication plugins do.

An authenticated request carries `X-Consumer-ID`, `X-Consumer-Custom-ID`,
`X-Consumer-Username` and `X-Credential-Identifier`; a request let through
as the anonymous consumer carries `X-Anonymous-Consumer: true` instead of
the credential. A header without a value is removed, so that a client can
never pose as a consumer by sending them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_plane.plugins.base import HeaderRewrite, LocalResponse, RequestContext

_CONTROL = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


def header_value(text: str) -> str:
    """Return `text` fit for a response header line (latin-1, one line)."""
    return text.translate(_CONTROL).encode("latin-1", "replace").decode("latin-1")


def consumer_headers(consumer: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Return the headers naming `consumer`; None removes a header."""
    headers: list[tuple[str, str | None]] = []
    for name, field in (
        ("X-Consumer-ID", "id"),
        ("X-Consumer-Custom-ID", "custom_id"),
        ("X-Consumer-Username", "username"),
    ):
        value = consumer.get(field)
        headers.append((name, str(value) if value is not None else None))
    return headers


def authenticated(consumer: Mapping[str, Any], identifier: str) -> HeaderRewrite:
    """Return the upstream headers of a request authenticated by a credential."""
    return HeaderRewrite.of(
        [
            *consumer_headers(consumer),
            ("X-Credential-Identifier", identifier),
            ("X-Anonymous-Consumer", None),
        ]
    )


class Anonymous:
    """The consumer an authentication plugin lets a failed request through as.

    `reference` is the plugin's `anonymous` setting: a consumer id or
    username. The consumer and its headers are looked up the first time a
    request needs them, and kept for the life of the config.
    """

    def __init__(
        self, reference: str, consumers: Mapping[str, Mapping[str, Any]]
    ) -> None:
        self.reference = reference
        self._consumers = consumers
        self._grant: tuple[Mapping[str, Any], HeaderRewrite] | None = None

    def admit(self, ctx: RequestContext) -> LocalResponse | None:
        """Let the request through as the anonymous consumer, or answer 500."""
        grant = self._grant
        if grant is None:
            consumer = self._consumers.get(self.reference)
            if consumer is None:
                return LocalResponse.message(
                    500,
                    f"anonymous consumer {self.reference} is configured "
                    "but doesn't exist",
                )
            rewrite = HeaderRewrite.of(
                [
                    *consumer_headers(consumer),
                    ("X-Credential-Identifier", None),
                    ("X-Anonymous-Consumer", "true"),
                ]
            )
            grant = self._grant = (consumer, rewrite)
        ctx.consumer, ctx.credential, ctx.anonymous = grant[0], None, True
        ctx.rewrite_upstream(grant[1])
        return None
