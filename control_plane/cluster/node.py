"""Track what one connected data plane node runs and how far behind it is.

The listener owns one :class:`NodeStatus` per connection, updates it from the
node's frames and from what it pushes, and saves :meth:`NodeStatus.record`
through the store, which the nodes API reads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from shared import __version__ as CONTROL_PLANE_VERSION
from shared.messages import Applied, ApplyError, Hello
from shared.snapshot import Snapshot

IN_SYNC = "in_sync"
BEHIND = "behind"
APPLY_FAILED = "apply_failed"
HELD = "held_by_conflict"
INCOMPATIBLE = "incompatible"

FULLY_COMPATIBLE = "COMPATIBILITY_STATE_FULLY_COMPATIBLE"
STATE_INCOMPATIBLE = "COMPATIBILITY_STATE_INCOMPATIBLE"


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


def version_issue(node_version: str, cp_version: str) -> dict[str, Any] | None:
    """Return why a node of `node_version` cannot follow this control plane.

    Like Kong: the major versions must match and the node's minor version
    must not be newer than the control plane's.
    """
    node, cp = _major_minor(node_version), _major_minor(cp_version)
    if node is not None and cp is not None:
        if node[0] == cp[0] and node[1] <= cp[1]:
            return None
    return {
        "code": "version_incompatible",
        "severity": "error",
        "description": (
            f"data plane node version {node_version} cannot run configs of "
            f"control plane version {cp_version}"
        ),
        "resolution": (
            "run a data plane node of the control plane's major version and "
            "a minor version no newer than its own"
        ),
        "affected_resources": [],
    }


def plugin_issue(plugins: frozenset[str], snapshot: Snapshot) -> dict[str, Any] | None:
    """Return the issue of a config using plugins the node lacks, if any."""
    configured = {
        str(plugin.get("name"))
        for plugin in snapshot.config.get("plugins", ())
        if isinstance(plugin, Mapping)
    }
    missing = sorted(configured - plugins)
    if not missing:
        return None
    return {
        "code": "plugin_set_incompatible",
        "severity": "error",
        "description": (
            f"the config uses plugins the data plane node lacks: {', '.join(missing)}"
        ),
        "resolution": "upgrade the data plane node or remove those plugins",
        "affected_resources": [{"type": "plugin", "name": name} for name in missing],
    }


class NodeStatus:
    """Hold a node's identity and sync progress as the control plane sees it."""

    def __init__(self, hello: Hello, *, cp_version: str = CONTROL_PLANE_VERSION):
        # Identity, from the hello.
        self.id = hello.node_id
        self.hostname = hello.hostname
        self.version = hello.portico_version
        self.labels = dict(hello.labels)
        self.plugins = frozenset(hello.plugins)
        self.capabilities = frozenset(hello.capabilities)
        # The SHA-256 fingerprint of the client certificate it connected with.
        self.fingerprint: str | None = None

        # What the node runs, and how its last version went.
        self.config_version = hello.config_version
        self.config_hash = hello.config_hash
        self.lag_ms: float | None = None
        self.error: str | None = None

        # Compatibility: the version issue is fixed for the connection, the
        # plugin issue follows the config currently pushed.
        self.version_issue = version_issue(hello.portico_version, cp_version)
        self.plugin_issue: dict[str, Any] | None = None

        # When the store last got this node's row, and the state it got.
        self.last_ping = time.time()
        self.saved_at = 0.0
        self.saved_state: str | None = None

    @property
    def compatible(self) -> bool:
        return self.version_issue is None and self.plugin_issue is None

    def runs(self, snapshot: Snapshot | None) -> bool:
        """Tell whether the node already serves `snapshot`."""
        return (
            snapshot is not None
            and self.config_version == snapshot.version
            and self.config_hash == snapshot.hash
        )

    def applied(self, message: Applied, lag_ms: float | None) -> None:
        """Record that the node now serves `message.version`."""
        self.config_version = message.version
        self.config_hash = message.hash
        self.lag_ms = lag_ms
        self.error = None

    def failed(self, message: ApplyError) -> None:
        """Record that the node could not apply `message.version`."""
        self.error = f"version {message.version}: {message.what}: {message.reason}"

    def sync_state(self, current: Snapshot | None, held: bool) -> str:
        """Return one of the sync states, judged against the group's snapshot."""
        if not self.compatible:
            return INCOMPATIBLE
        if self.error is not None:
            return APPLY_FAILED
        if held:
            return HELD
        if current is None or self.runs(current):
            return IN_SYNC
        return BEHIND

    def record(
        self, current: Snapshot | None, held: bool, *, connected: bool = True
    ) -> dict[str, Any]:
        """Return the row the store keeps for this node."""
        issues = [i for i in (self.version_issue, self.plugin_issue) if i]
        return {
            "id": self.id,
            "hostname": self.hostname,
            "version": self.version,
            "labels": dict(self.labels),
            "last_ping": int(self.last_ping),
            "config_hash": self.config_hash,
            "config_version": self.config_version,
            "sync_state": self.sync_state(current, held),
            "compatibility_status": {
                "state": STATE_INCOMPATIBLE if issues else FULLY_COMPATIBLE,
                "issues": issues,
            },
            "connected": connected,
            "lag_ms": None if self.lag_ms is None else round(self.lag_ms, 3),
            "error": self.error,
        }
