"""The config snapshot a data plane node runs, its canonical hash, and the merge.

A snapshot is immutable: the control plane builds one per committed change of a
runtime group and hands the same object to every node of the group. Its hash
depends on the entities only, never on the version, so two groups (or two
versions) with the same entities have the same hash.

A composite runtime group has no entities of its own; its config is the merge
of its members' configs. :func:`merge_members` refuses a merge in which two
members would clash (same id, same unique name, or the same global plugin) and
reports every offending entity instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

Config = Mapping[str, Any]

FORMAT_VERSION = "3.0"

ENTITY_KEYS = (
    "services",
    "routes",
    "consumers",
    "plugins",
    "basicauth_credentials",
    "keyauth_credentials",
    "acls",
)

# What a node reports before it has applied any config. It is not the hash of
# an empty config: a group without entities still has a real config to apply,
# and its hash is `config_hash(build_config({}))`.
EMPTY_HASH = "0" * 32

# Konnect names a conflicting resource by its singular type.
_RESOURCE_TYPES = {
    "services": "service",
    "routes": "route",
    "consumers": "consumer",
    "plugins": "plugin",
    "basicauth_credentials": "basicauth_credential",
    "keyauth_credentials": "keyauth_credential",
    "acls": "acl",
}

# Fields whose values must be unique across the members of a composite group.
_UNIQUE_FIELDS: dict[str, tuple[str, ...]] = {
    "services": ("name",),
    "routes": ("name",),
    "consumers": ("username", "custom_id"),
    "plugins": ("instance_name",),
    "basicauth_credentials": ("username",),
    "keyauth_credentials": ("key",),
    "acls": (),
}

# The field shown as `Name=` in a conflict's description. Key-auth keys are
# secrets, so a key-auth conflict is described by its id only.
_DISPLAY_FIELDS: dict[str, tuple[str, ...]] = {
    "services": ("name",),
    "routes": ("name",),
    "consumers": ("username", "custom_id"),
    "plugins": ("instance_name", "name"),
    "basicauth_credentials": ("username",),
    "keyauth_credentials": (),
    "acls": ("group",),
}


@dataclass(frozen=True)
class Snapshot:
    """Hold one version of a runtime group's config, as its nodes run it."""

    group_id: str
    version: int
    hash: str
    config: Config


@dataclass(frozen=True)
class Conflict:
    """Describe one member entity that keeps a composite group from merging."""

    cluster_id: str
    description: str
    resource_id: str
    resource_type: str

    def as_dict(self) -> dict[str, Any]:
        """Return the conflict in the shape of Konnect's group status."""
        return {
            "cluster_id": self.cluster_id,
            "description": self.description,
            "resource": {"id": self.resource_id, "type": self.resource_type},
        }


@dataclass(frozen=True)
class MergeResult:
    """Hold a merged config, or the conflicts that prevented it."""

    config: dict[str, Any] | None
    conflicts: tuple[Conflict, ...]


def _by_id(entity: Mapping[str, Any]) -> str:
    return str(entity["id"])


def _fk_id(entity: Mapping[str, Any], field: str) -> str | None:
    ref = entity.get(field)
    if isinstance(ref, Mapping):
        value = ref.get("id")
        return None if value is None else str(value)
    return None


def build_config(entities: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Return the declarative config of a standard group from its entity lists.

    Disabled services are left out with their routes and every plugin attached
    to either, and so are disabled plugins, as Kong's declarative export does.
    Each list is sorted by id. Entities are shared, not copied: callers must
    not mutate them afterwards.
    """
    disabled_services = {
        str(s["id"]) for s in entities.get("services", ()) if s.get("enabled") is False
    }
    services = [
        s for s in entities.get("services", ()) if str(s["id"]) not in disabled_services
    ]

    routes: list[Mapping[str, Any]] = []
    dropped_routes: set[str] = set()
    for route in entities.get("routes", ()):
        if _fk_id(route, "service") in disabled_services:
            dropped_routes.add(str(route["id"]))
        else:
            routes.append(route)

    plugins = [
        p
        for p in entities.get("plugins", ())
        if p.get("enabled") is not False
        and _fk_id(p, "service") not in disabled_services
        and _fk_id(p, "route") not in dropped_routes
    ]

    config: dict[str, Any] = {"_format_version": FORMAT_VERSION}
    kept = {"services": services, "routes": routes, "plugins": plugins}
    for key in ENTITY_KEYS:
        items = kept[key] if key in kept else entities.get(key, ())
        config[key] = sorted(items, key=_by_id)
    return config


def config_hash(config: Config) -> str:
    """Return the canonical hash of a config: 32 lowercase hex characters.

    The hash covers the entities only (keys sorted, lists as given, which
    :func:`build_config` and :func:`merge_members` sort by id).
    """
    data = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make_snapshot(group_id: str, version: int, config: Config) -> Snapshot:
    """Return the snapshot of `config` as version `version` of a group."""
    return Snapshot(group_id, version, config_hash(config), config)


def _display_name(key: str, entity: Mapping[str, Any]) -> str | None:
    for field in _DISPLAY_FIELDS[key]:
        value = entity.get(field)
        if value is not None:
            return str(value)
    return None


def _conflict(cluster_id: str, key: str, entity: Mapping[str, Any]) -> Conflict:
    entity_id = str(entity["id"])
    name = _display_name(key, entity)
    description = f"conflicting entity found: ID={entity_id}"
    if name is not None:
        description += f", Name={name}"
    return Conflict(cluster_id, description, entity_id, _RESOURCE_TYPES[key])


def _is_global(plugin: Mapping[str, Any]) -> bool:
    return (
        plugin.get("service") is None
        and plugin.get("route") is None
        and plugin.get("consumer") is None
    )


def _clashes(
    key: str, members: Sequence[tuple[str, Config]]
) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Yield (cluster id, entity) for every entity of type `key` that clashes.

    A value clashes when entities of two different members share it; clashes
    within one member are the store's business, not the merge's.
    """
    # "@global" stands for the name of a plugin without service, route or
    # consumer: two members may not each hold the same global plugin.
    indexes = ["id", *_UNIQUE_FIELDS[key]]
    if key == "plugins":
        indexes.append("@global")

    for field in indexes:
        seen: dict[Any, list[tuple[str, Mapping[str, Any]]]] = {}
        for cluster_id, config in members:
            for entity in config.get(key, ()):
                if field == "@global":
                    if not _is_global(entity):
                        continue
                    value: Any = entity.get("name")
                else:
                    value = entity.get(field)
                if value is None:
                    continue
                seen.setdefault(value, []).append((cluster_id, entity))
        for owners in seen.values():
            if len(owners) > 1 and len({cid for cid, _ in owners}) > 1:
                yield from owners


def merge_members(members: Sequence[tuple[str, Config]]) -> MergeResult:
    """Merge the configs of a composite group's members, or report conflicts.

    `members` holds (member group id, member config) pairs. Every clashing
    entity of every member is reported, once per entity, in member order.
    """
    conflicts: list[Conflict] = []
    reported: set[tuple[str, str, str]] = set()
    for key in ENTITY_KEYS:
        for cluster_id, entity in _clashes(key, members):
            mark = (cluster_id, key, str(entity["id"]))
            if mark not in reported:
                reported.add(mark)
                conflicts.append(_conflict(cluster_id, key, entity))
    if conflicts:
        order = {cid: i for i, (cid, _) in enumerate(members)}
        conflicts.sort(key=lambda c: order[c.cluster_id])
        return MergeResult(None, tuple(conflicts))

    merged: dict[str, Any] = {"_format_version": FORMAT_VERSION}
    for key in ENTITY_KEYS:
        items: list[Mapping[str, Any]] = []
        for _, config in members:
            items.extend(config.get(key, ()))
        merged[key] = sorted(items, key=_by_id)
    return MergeResult(merged, ())
