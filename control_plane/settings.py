"""Settings of a running control plane, gathered from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    def control_plane_endpoint(self, group_id: str) -> str:
        """Return the URL data plane nodes of a group connect to."""
        return f"{self.cluster_public_url.rstrip('/')}/cp/{group_id}"

    def telemetry_endpoint(self, group_id: str) -> str:
        """Return the URL data plane nodes of a group send telemetry to."""
        return f"{self.telemetry_public_url.rstrip('/')}/tp/{group_id}"
