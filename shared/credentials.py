"""Password hashing for basic-auth credentials.

A stored password reads ``pbkdf2-sha256$<iterations>$<salt>$<digest>`` with the
salt and digest in unpadded URL-safe base64. The iteration count keeps one
verification at a few milliseconds: data plane nodes verify on the request
path and cache the verified results, so the cost is paid once per credential
and node rather than once per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SCHEME = "pbkdf2-sha256"
ITERATIONS = 12_000
_SALT_BYTES = 16
_MAX_ITERATIONS = 10_000_000


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def hash_password(password: str) -> str:
    """Return the stored form of `password`, salted with fresh random bytes."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt, ITERATIONS)
    return f"{SCHEME}${ITERATIONS}${_encode(salt)}${_encode(digest)}"


def _parse(stored: str) -> tuple[int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
        return None
    iterations = int(parts[1])
    if not 1 <= iterations <= _MAX_ITERATIONS:
        return None
    try:
        salt, digest = _decode(parts[2]), _decode(parts[3])
    except (binascii.Error, ValueError):
        return None
    if not salt or len(digest) != hashlib.sha256().digest_size:
        return None
    return iterations, salt, digest


def is_password_hash(value: str) -> bool:
    """Tell whether `value` is a stored password made by :func:`hash_password`."""
    return _parse(value) is not None


def verify_password(password: str, stored: str) -> bool:
    """Tell whether `password` matches `stored`, comparing in constant time.

    A malformed `stored` value never matches.
    """
    parsed = _parse(stored)
    if parsed is None:
        return False
    iterations, salt, digest = parsed
    return hmac.compare_digest(_derive(password, salt, iterations), digest)
