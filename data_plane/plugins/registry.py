"""List the plugin runtimes this data plane node can run."""

from __future__ import annotations

from collections.abc import Mapping

from data_plane.plugins.base import PluginFactory
from data_plane.plugins.basic_auth import BasicAuth

FACTORIES: Mapping[str, PluginFactory] = {
    "basic-auth": BasicAuth,
}
