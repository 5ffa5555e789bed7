"""Normalize request paths and build upstream paths with Kong's path handling.

Kong normalizes the path before routing (RFC 3986 6.2.2: uppercase percent
escapes, decode unreserved characters, remove dot segments) and merges
repeated slashes. The upstream path joins the service's path with what the
route leaves of the request path, following `path_handling` v0 or v1.
"""

from __future__ import annotations

import re
from typing import Final

_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_SLASHES: Final = re.compile(r"/{2,}")


def _unescape(found: re.Match[str]) -> str:
    char = chr(int(found.group(1), 16))
    return char if char in _UNRESERVED else "%" + found.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """Apply RFC 3986 5.2.4 to an absolute path."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    normalized = "/" + "/".join(output)
    if path.endswith(("/.", "/..")) and not normalized.endswith("/"):
        normalized += "/"
    return normalized


def normalize_path(path: str) -> str:
    """Return the normalized form of a request path (no query string)."""
    if "%" not in path and "/." not in path and "//" not in path:
        return path  # the common case costs three scans and no allocation
    if "%" in path:
        path = _ESCAPE.sub(_unescape, path)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "/." in path:
        path = _remove_dot_segments(path)
    return path


def upstream_path(
    base: str,
    path: str,
    matched: int,
    *,
    strip_path: bool,
    has_paths: bool,
    v1: bool,
) -> str:
    """Join the service path `base` and the request `path` like Kong.

    `matched` is the length of the path prefix (or regex match) the route
    matched; it is dropped when `strip_path` is set.
    """
    strip = strip_path and has_paths
    postfix = path[matched:] if strip else path
    if v1:
        if strip:
            if base.endswith("/") and postfix.startswith("/"):
                return base[:-1] + postfix
            return base + postfix
        return base + path[1:]
    return _upstream_path_v0(base, path, postfix, strip)


def _upstream_path_v0(base: str, path: str, postfix: str, strip: bool) -> str:
    """Follow Kong's v0 table: segments are joined with exactly one slash."""
    if base.endswith("/"):
        if not strip:
            return base + path[1:] if path.startswith("/") else base + path
        if not postfix:
            if base == "/" or path.endswith("/"):
                return base
            return base[:-1]
        if postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    if not strip:
        return base if path == "/" else base + path
    if not postfix:
        return base + "/" if len(path) > 1 and path.endswith("/") else base
    if postfix.startswith("/"):
        return base + postfix
    return base + "/" + postfix
