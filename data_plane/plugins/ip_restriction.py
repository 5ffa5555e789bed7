"""Run the ip-restriction plugin the way Kong does.

The client's address (the peer of the connection) is refused when it is in
`deny`, or when `allow` is set and it is not in it; `deny` is checked
first. A refusal answers `status` (403) with `message`, by default
"IP address not allowed: <address>" as in Kong 3.

The lists are compiled once per config into sets of network numbers, one
per prefix length, so that a check costs a lookup per distinct length
rather than one per entry; answers are remembered per address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Final

from data_plane.plugins.base import ConfigIndex, Deferred, LocalResponse, RequestContext
from shared.errors import InvalidParameter, ValidationError

PRIORITY: Final = 990
ANSWERS = 10_000  # addresses whose answer an instance keeps

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Networks:
    """A set of IP networks, checked by prefix length."""

    def __init__(self, entries: Iterable[str]) -> None:
        # (version, prefix length) -> network numbers shifted to that length
        self._by_length: dict[tuple[int, int], set[int]] = {}
        for entry in entries:
            network = ipaddress.ip_network(entry, strict=False)
            bits = network.max_prefixlen
            shift = bits - network.prefixlen
            number = int(network.network_address) >> shift
            self._by_length.setdefault((network.version, network.prefixlen), set()).add(
                number
            )
        self._checks = [
            (version, bits_of(version) - length, numbers)
            for (version, length), numbers in self._by_length.items()
        ]

    def __bool__(self) -> bool:
        return bool(self._checks)

    def __contains__(self, address: Address) -> bool:
        value = int(address)
        version = address.version
        for check_version, shift, numbers in self._checks:
            if check_version == version and value >> shift in numbers:
                return True
        return False


def bits_of(version: int) -> int:
    """Return the address width of an IP version."""
    return 32 if version == 4 else 128


def client_address(text: str) -> Address | None:
    """Parse a peer address; an IPv4-mapped IPv6 address gives its IPv4 one."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class IpRestriction:
    """One ip-restriction plugin entity, compiled."""

    name = "ip-restriction"
    priority = PRIORITY

    def __init__(self, config: Mapping[str, Any], index: ConfigIndex) -> None:
        try:
            self._deny = Networks(config.get("deny") or ())
            self._allow = Networks(config.get("allow") or ())
        except ValueError as exc:
            raise ValidationError(
                f"ip-restriction: {exc}",
                [InvalidParameter("config.allow", "ip_or_cidr", str(exc))],
            ) from exc
        status = config.get("status")
        self._status = int(status) if status is not None else 403
        self._message = config.get("message")
        self._answers: dict[str, LocalResponse | None] = {}

    def access(self, ctx: RequestContext) -> LocalResponse | Deferred | None:
        """Let the client's address through, or refuse it."""
        peer = ctx.client_ip
        try:
            return self._answers[peer]
        except KeyError:
            pass
        answer = self._answer(peer)
        if len(self._answers) >= ANSWERS:
            del self._answers[next(iter(self._answers))]
        self._answers[peer] = answer
        return answer

    def _answer(self, peer: str) -> LocalResponse | None:
        address = client_address(peer)
        if address is None:
            return LocalResponse.message(
                403,
                "Cannot identify the client IP address, unix domain "
                "sockets are not supported.",
            )
        if (self._deny and address in self._deny) or (
            self._allow and address not in self._allow
        ):
            message = self._message or f"IP address not allowed: {peer}"
            return LocalResponse.message(self._status, message)
        return None
