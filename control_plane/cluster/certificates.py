"""Accept data plane nodes by the client certificates pinned to their group.

Python's ssl module accepts a client certificate only when it chains to a
trusted one, and offers no verify callback. So every certificate pinned to
any runtime group is loaded into the server context as a trust anchor: a
certificate that is pinned nowhere fails the TLS handshake. Which group a
certificate is pinned to is checked after the handshake, per connection, by
its SHA-256 fingerprint.

A context cannot forget a trust anchor. An unpinned certificate therefore
keeps passing the handshake until the control plane restarts, and is refused
by the fingerprint check instead.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection

from control_plane import pki

logger = logging.getLogger(__name__)


class CertificateStore(Protocol):
    """The store methods that tell which certificates are pinned where."""

    async def list_groups(self) -> list[dict[str, Any]]: ...

    async def pinned_certificates(self, group_id: str) -> list[dict[str, Any]]: ...


def peer_fingerprint(connection: ServerConnection) -> str | None:
    """Return the fingerprint of the client certificate a connection showed."""
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return pki.der_fingerprint(der) if der else None


class PinnedCertificates:
    """Own the server TLS context and the trust anchors loaded into it."""

    def __init__(self, store: CertificateStore, cert: Path, key: Path) -> None:
        self._store = store
        self.context = pki.server_ssl_context(cert, key)
        self._loaded: set[str] = set()
        # Fingerprints pinned to each group, as of the last refresh.
        self._pinned: dict[str, frozenset[str]] = {}

    async def refresh(self) -> int:
        """Trust every certificate pinned since the last refresh; return how many."""
        added = 0
        pinned: dict[str, frozenset[str]] = {}
        for group in await self._store.list_groups():
            certificates = await self._store.pinned_certificates(str(group["id"]))
            added += self._trust(certificates)
            pinned[str(group["id"])] = frozenset(
                str(c.get("fingerprint")) for c in certificates
            )
        self._pinned = pinned
        if added:
            logger.info("trusting %d newly pinned client certificates", added)
        return added

    def _trust(self, certificates: Sequence[dict[str, Any]]) -> int:
        added = 0
        for certificate in certificates:
            digest = str(certificate.get("fingerprint", ""))
            pem = certificate.get("cert")
            if digest in self._loaded or not isinstance(pem, str):
                continue
            try:
                pki.trust_certificate(self.context, pem)
            except ssl.SSLError as exc:
                # The admin API validated it; a failure here is a bug.
                logger.error("cannot trust pinned certificate %s: %s", digest, exc)
                continue
            self._loaded.add(digest)
            added += 1
        return added

    def pinned_to(self, group_id: str, digest: str | None) -> bool:
        """Tell whether `digest` was pinned to `group_id` at the last refresh."""
        return digest is not None and digest in self._pinned.get(group_id, ())

    async def is_pinned(self, group_id: str, digest: str | None) -> bool:
        """Tell whether `digest` is pinned to `group_id` right now."""
        if digest is None:
            return False
        pinned = await self._store.pinned_certificates(group_id)
        return any(c.get("fingerprint") == digest for c in pinned)
