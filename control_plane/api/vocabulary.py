"""Konnect's two names for the same things: runtime groups and control planes.

Konnect renamed runtime groups to control planes in 2023; Portico serves both
URL families over one model. Internally a group's `cluster_type` is
`hybrid`, `composite` or `k8s_ingress_controller`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.settings import Settings

HYBRID = "hybrid"
COMPOSITE = "composite"
K8S = "k8s_ingress_controller"


@dataclass(frozen=True)
class Vocabulary:
    """The names one URL family uses."""

    prefix: str
    cluster_types: dict[str, str]
    members_path: str
    member_status_path: str
    status_path: str
    composite_states: dict[str, str]
    wraps_status: bool

    def cluster_type(self, internal: str) -> str:
        """Return this family's name of an internal cluster type."""
        return self.cluster_types[internal]

    def group_view(self, group: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """Return a group in the shape of this family's responses."""
        return {
            "id": group["id"],
            "name": group["name"],
            "description": group["description"],
            "labels": group["labels"],
            "config": {
                "control_plane_endpoint": settings.control_plane_endpoint(group["id"]),
                "telemetry_endpoint": settings.telemetry_endpoint(group["id"]),
                "cluster_type": self.cluster_type(group["cluster_type"]),
                "auth_type": group["auth_type"],
                "cloud_gateway": False,
                "proxy_urls": group["proxy_urls"],
            },
            "created_at": group["created_at"],
            "updated_at": group["updated_at"],
        }


RUNTIME_GROUPS = Vocabulary(
    prefix="/v2/runtime-groups",
    cluster_types={
        HYBRID: "CLUSTER_TYPE_HYBRID",
        COMPOSITE: "CLUSTER_TYPE_COMPOSITE",
        K8S: "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER",
    },
    members_path="composite-memberships",
    member_status_path="composite-member-status",
    status_path="composite-status",
    composite_states={
        "OK": "COMPOSITE_STATE_OK",
        "CONFLICT": "COMPOSITE_STATE_CONFLICT",
        "UNKNOWN": "COMPOSITE_STATE_UNKNOWN",
    },
    wraps_status=False,
)

CONTROL_PLANES = Vocabulary(
    prefix="/v2/control-planes",
    cluster_types={
        HYBRID: "CLUSTER_TYPE_CONTROL_PLANE",
        COMPOSITE: "CLUSTER_TYPE_CONTROL_PLANE_GROUP",
        K8S: "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER",
    },
    members_path="group-memberships",
    member_status_path="group-member-status",
    status_path="group-status",
    composite_states={"OK": "OK", "CONFLICT": "CONFLICT", "UNKNOWN": "UNKNOWN"},
    wraps_status=True,
)

VOCABULARIES = (RUNTIME_GROUPS, CONTROL_PLANES)

# Either family's names are accepted on input, on either family's paths.
CLUSTER_TYPES_IN = {
    name: internal
    for vocabulary in VOCABULARIES
    for internal, name in vocabulary.cluster_types.items()
}
