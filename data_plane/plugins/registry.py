"""List the plugin runtimes this data plane node can run."""

from __future__ import annotations

from collections.abc import Mapping

from data_plane.plugins import correlation_id, response_transformer
from data_plane.plugins.acl import Acl
from data_plane.plugins.base import PluginFactory
from data_plane.plugins.basic_auth import BasicAuth
from data_plane.plugins.cors import Cors
from data_plane.plugins.ip_restriction import IpRestriction
from data_plane.plugins.key_auth import KeyAuth
from data_plane.plugins.prometheus import Prometheus
from data_plane.plugins.rate_limiting import RateLimiting
from data_plane.plugins.request_size_limiting import RequestSizeLimiting
from data_plane.plugins.request_termination import RequestTermination
from data_plane.plugins.request_transformer import RequestTransformer

FACTORIES: Mapping[str, PluginFactory] = {
    "acl": Acl,
    "basic-auth": BasicAuth,
    "cors": Cors,
    "correlation-id": correlation_id.build,
    "ip-restriction": IpRestriction,
    "key-auth": KeyAuth,
    "prometheus": Prometheus,
    "rate-limiting": RateLimiting,
    "request-size-limiting": RequestSizeLimiting,
    "request-termination": RequestTermination,
    "request-transformer": RequestTransformer,
    "response-transformer": response_transformer.build,
}
