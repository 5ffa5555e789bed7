"""Field types shared by entities and plugins: names, hosts, paths, ids, tags.

Each follows the rule Kong applies to the same kind of value, so a body Kong
accepts is accepted here and a body Kong refuses is refused for the same
reason.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any

from shared.schema.fields import Field

MAX_TIMEOUT = 2**31 - 2

_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_NAME = re.compile(r"[\w.~-]+")
_PATH_CHARS = re.compile(r"/[A-Za-z0-9._~/%:@!$&'()*+,;=-]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 7230 token characters.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_uuid(value: Any) -> bool:
    """Tell whether `value` is a UUID in its canonical textual form."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def check_uuid(value: str) -> str | None:
    """Return why `value` is not a UUID, or None."""
    return None if is_uuid(value) else "expected a valid UUID"


def check_name(value: str) -> str | None:
    """Return why `value` breaks Kong's name rule, or None."""
    # `\w` is Unicode-aware, which matches Kong's acceptance of UTF-8 names.
    if _NAME.fullmatch(value):
        return None
    return (
        f"invalid value '{value}': the only accepted ascii characters are "
        "alphanumerics or ., -, _, and ~"
    )


def check_tag(value: str) -> str | None:
    """Return why `value` is not a valid tag, or None."""
    if value and all(
        c == " " or (32 < ord(c) < 127 and c not in ",/") or ord(c) > 127 for c in value
    ):
        return None
    return (
        f"invalid tag '{value}': expected printable ascii (except `,` and `/`) "
        "or valid utf-8 sequences"
    )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def _is_hostname(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    return all(_LABEL.fullmatch(label) for label in labels)


def split_port(value: str) -> tuple[str, str | None]:
    """Split ``host:port`` (or ``[v6]:port``); the port is None when absent."""
    if value.startswith("["):
        end = value.find("]")
        if end != -1 and value[end + 1 : end + 2] == ":":
            return value[: end + 1], value[end + 2 :]
        return value, None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


def check_host(value: str) -> str | None:
    """Check an upstream host: a hostname or an IP, without a port."""
    host, port = split_port(value)
    if port is not None:
        return "must not have a port"
    if _is_ip(host) or _is_hostname(host):
        return None
    return f"invalid value: {value}"


def check_route_host(value: str) -> str | None:
    """Check a route host: one optional wildcard label, an optional port."""
    if value.count("*") > 1:
        return "invalid wildcard: must have at most one wildcard"
    if "*" in value and not (value.startswith("*.") or value.endswith(".*")):
        return "invalid wildcard: must be placed at leftmost or rightmost label"
    host, port = split_port(value.replace("*", "wildcard"))
    if port is not None and not (port.isdigit() and int(port) <= 65535):
        return "invalid port number"
    if _is_ip(host) or _is_hostname(host):
        return None
    return f"invalid value: {value}"


def check_path(value: str) -> str | None:
    """Check an upstream path like Kong: RFC 3986 characters, no ``//``."""
    if not value.startswith("/"):
        return "should start with: /"
    if "//" in value:
        return "must not have empty segments"
    if not _PATH_CHARS.fullmatch(value):
        return (
            f"invalid path: '{value}' "
            "(characters outside of the reserved list of RFC 3986 found)"
        )
    if _BAD_PERCENT.search(value):
        return f"invalid url-encoded value in '{value}'"
    return None


def check_header_name(value: str) -> str | None:
    """Return why `value` is not an HTTP header name, or None."""
    if _TOKEN.fullmatch(value):
        return None
    return f"bad header name '{value}': expected letters, digits and !#$%&'*+-.^_`|~"


def check_ip_or_cidr(value: str) -> str | None:
    """Return why `value` is neither an IP address nor a CIDR range, or None."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"invalid ip or cidr range: '{value}'"
    return None


def string(**kwargs: Any) -> Field:
    """Return a string field; strings are never empty, as in Kong."""
    kwargs.setdefault("len_min", 1)
    return Field("string", **kwargs)


def uuid_field() -> Field:
    """Return an optional UUID field, such as an entity's id."""
    return Field("string", checks=(("uuid", check_uuid),))


def name_field() -> Field:
    """Return an optional name under Kong's name rule."""
    return string(checks=(("name", check_name),))


def tags_field() -> Field:
    """Return the optional list of tags every entity has."""
    return Field("array", elements=string(checks=(("tag", check_tag),)))


def host_field(**kwargs: Any) -> Field:
    """Return a hostname or IP field, without a port."""
    return string(checks=(("host", check_host),), **kwargs)


def header_name_field(**kwargs: Any) -> Field:
    """Return an HTTP header name field."""
    return string(checks=(("header_name", check_header_name),), **kwargs)


def port_field(**kwargs: Any) -> Field:
    """Return a TCP port field (0 to 65535)."""
    return Field("integer", between=(0, 65535), **kwargs)


def timeout_field(default: int) -> Field:
    """Return a required timeout in milliseconds with `default`."""
    return Field("integer", required=True, default=default, between=(1, MAX_TIMEOUT))


def timestamp_field() -> Field:
    """Return an epoch-seconds timestamp field."""
    return Field("integer", between=(0, 2**53))


def foreign(entity: str, *, required: bool = False) -> Field:
    """Return a reference to an entity of type `entity`."""
    return Field("foreign", required=required, reference=entity)


def boolean(default: bool) -> Field:
    """Return a required boolean with `default`."""
    return Field("boolean", required=True, default=default)


def string_array(default: list[str] | None = None, **kwargs: Any) -> Field:
    """Return a list of non-empty strings."""
    return Field("array", default=default, elements=string(), **kwargs)
