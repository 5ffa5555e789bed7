"""The service entity: an upstream Portico proxies to, and its ``url`` shorthand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.schema.fields import Checker, Field
from shared.schema.typedefs import (
    boolean,
    check_path,
    host_field,
    name_field,
    port_field,
    string,
    tags_field,
    timeout_field,
    timestamp_field,
    uuid_field,
)

DEFAULT_PORTS = {"http": 80, "https": 443}
URL_PARTS = ("protocol", "host", "port", "path")


def _unsupported(what: str) -> tuple[tuple[str, Any], ...]:
    def check(value: Any) -> str:
        return f"{what} are not supported by Portico; expected null"

    return (("unsupported", check),)


RECORD = Field(
    "record",
    required=True,
    fields={
        "id": uuid_field(),
        "created_at": timestamp_field(),
        "updated_at": timestamp_field(),
        "name": name_field(),
        "retries": Field("integer", required=True, default=5, between=(0, 32767)),
        "protocol": Field(
            "string",
            required=True,
            default="http",
            one_of=("http", "https"),
            one_of_reason="expected one of: http, https (Portico proxies HTTP)",
        ),
        "host": host_field(required=True),
        "port": port_field(required=True, default=80),
        "path": string(checks=(("path", check_path),)),
        "connect_timeout": timeout_field(60000),
        "write_timeout": timeout_field(60000),
        "read_timeout": timeout_field(60000),
        "tags": tags_field(),
        "client_certificate": Field("any", checks=_unsupported("client certificates")),
        "tls_verify": Field("boolean"),
        "tls_verify_depth": Field("integer", between=(0, 64)),
        "ca_certificates": Field("any", checks=_unsupported("CA certificates")),
        "enabled": boolean(True),
    },
)

WRITE_ONLY = {"url": string()}


def expand_url(
    data: dict[str, Any], existing: Mapping[str, Any] | None, checker: Checker
) -> None:
    """Replace the write-only ``url`` in `data` by the fields it stands for.

    Without a url, a new https service defaults to port 443 instead of 80.
    """
    if "url" not in data:
        if existing is None and "port" not in data and data.get("protocol") == "https":
            data["port"] = DEFAULT_PORTS["https"]
        return

    url = data.pop("url")
    clashing = [part for part in URL_PARTS if part in data]
    for part in clashing:
        checker.fail(part, "conflict", f"'{part}' cannot be set together with 'url'")
    if url is None or clashing:
        return
    if not isinstance(url, str):
        checker.fail("url", "type", "expected a string")
        return

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        checker.fail("url", "url", f"could not parse url: {exc}")
        return
    if not parts.scheme:
        checker.fail("url", "url", "missing scheme in url")
        return
    if not parts.hostname:
        checker.fail("url", "url", "missing host in url")
        return
    if parts.query or parts.fragment:
        checker.fail("url", "url", "url must not have a query string or fragment")
        return

    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    data["protocol"] = parts.scheme
    data["host"] = host
    data["port"] = port if port is not None else DEFAULT_PORTS.get(parts.scheme, 80)
    data["path"] = parts.path or None
