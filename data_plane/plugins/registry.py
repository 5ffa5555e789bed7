"""List the plugin runtimes this data plane node can run."""

from __future__ import annotations

from collections.abc import Mapping

from data_plane.plugins.acl import Acl
from data_plane.plugins.base import PluginFactory
from data_plane.plugins.basic_auth import BasicAuth
from data_plane.plugins.correlation_id import CorrelationId
from data_plane.plugins.ip_restriction import IpRestriction
from data_plane.plugins.key_auth import KeyAuth
from data_plane.plugins.request_size_limiting import RequestSizeLimiting
from data_plane.plugins.request_termination import RequestTermination

FACTORIES: Mapping[str, PluginFactory] = {
    "acl": Acl,
    "basic-auth": BasicAuth,
    "correlation-id": CorrelationId,
    "ip-restriction": IpRestriction,
    "key-auth": KeyAuth,
    "request-size-limiting": RequestSizeLimiting,
    "request-termination": RequestTermination,
}
