"""Settings of a running control plane, gathered from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Kong's default cluster_max_payload.
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024


@dataclass(frozen=True)
class Listen:
    """A host and port to listen on."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse `host:port` (an IPv6 host in brackets)."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected host:port, got {text!r}")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything the control plane process needs to know at start."""

    admin_listen: Listen
    cluster_listen: Listen
    telemetry_listen: Listen
    prefix: Path
    database: Path
    cluster_public_url: str
    telemetry_public_url: str
    cluster_cert: Path | None = None
    cluster_cert_key: Path | None = None
    log_level: str = "info"
    admin_token: str | None = None
    # The largest WebSocket message the cluster listener takes from a node or
    # pushes to one; larger configs are not pushed.
    cluster_max_payload: int = DEFAULT_MAX_PAYLOAD
    # Seconds between pings to each node; a node silent for as long again
    # is disconnected.
    cluster_ping_interval: float = 20.0

    def control_plane_endpoint(self, group_id: str) -> str:
        """Return the URL data plane nodes of a group connect to."""
        return f"{self.cluster_public_url.rstrip('/')}/cp/{group_id}"

    def telemetry_endpoint(self, group_id: str) -> str:
        """Return the URL data plane nodes of a group send telemetry to."""
        return f"{self.telemetry_public_url.rstrip('/')}/tp/{group_id}"
