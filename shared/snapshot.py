"""The config snapshot a data plane node runs, its canonical hash, and the merge.

A snapshot is immutable: the control plane builds one per committed change of a
runtime group and hands the same object to every node of the group. Its hash
depends on the entities only, never on the version, so two groups (or two
versions) with the same entities have the same hash.

The hash is built so that a change costs in proportion to its size, not to the
config's: each entity is hashed alone (xxh3-128 of its canonical JSON), the
digests of one entity list are added modulo 2**128, and the final hash covers
the plain fields and those per-list sums (:class:`ConfigDigest`). Replacing
one entity then means subtracting one digest and adding another, and the
digest of a composite group is the sum of its members'. The hash detects
changes and transfer faults between the planes; it is not a signature (the
connection's pinned certificates authenticate the control plane).

A composite runtime group has no entities of its own; its config is the merge
of its members' configs. :func:`merge_members` refuses a merge in which two
members would clash (same id, same unique name, or the same global plugin) and
reports every offending entity instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson
import xxhash

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


_MODULUS = 1 << 128


def is_entity_list(value: object) -> TypeGuard[list[Mapping[str, Any]]]:
    """Tell a config's list of entities from its plain values.

    Configs come from :func:`build_config` or :func:`merge_members`, whose
    lists hold entities only: looking at the first item is enough, without a
    pass over every entity.
    """
    if not isinstance(value, list):
        return False
    if not value:
        return True
    first = value[0]
    return isinstance(first, Mapping) and isinstance(first.get("id"), str)


def entity_digest(entity: Mapping[str, Any]) -> int:
    """Return the 128-bit digest of one entity (its keys sorted)."""
    return xxhash.xxh3_128_intdigest(orjson.dumps(entity, option=orjson.OPT_SORT_KEYS))


@dataclass(frozen=True)
class ConfigDigest:
    """The parts a config's hash is made of, kept so it can be updated.

    `fields` is the canonical JSON of the config's plain values; `sums` holds,
    per entity list, the sum of its entities' digests modulo 2**128.
    """

    fields: bytes
    sums: Mapping[str, int]

    @classmethod
    def of(cls, config: Config) -> ConfigDigest:
        """Return the digest of a whole config."""
        sums: dict[str, int] = {}
        plain: dict[str, Any] = {}
        for key, value in config.items():
            if is_entity_list(value):
                sums[key] = sum(map(entity_digest, value)) % _MODULUS
            else:
                plain[key] = value
        return cls(orjson.dumps(plain, option=orjson.OPT_SORT_KEYS), sums)

    def hexdigest(self) -> str:
        """Return the config's hash: 32 lowercase hex characters."""
        hasher = xxhash.xxh3_128(self.fields)
        for key in sorted(self.sums):
            hasher.update(b"\0" + key.encode() + b"\0")
            hasher.update(self.sums[key].to_bytes(16, "big"))
        return hasher.hexdigest()

    def replaced(
        self,
        key: str,
        removed: Iterable[Mapping[str, Any]],
        added: Iterable[Mapping[str, Any]],
    ) -> ConfigDigest:
        """Return the digest once `removed` left the list `key` and `added` joined."""
        total = self.sums.get(key, 0)
        total -= sum(map(entity_digest, removed))
        total += sum(map(entity_digest, added))
        return ConfigDigest(self.fields, {**self.sums, key: total % _MODULUS})


@dataclass(frozen=True)
class Snapshot:
    """Hold one version of a runtime group's config, as its nodes run it.

    `digest`, when known, is what `hash` was computed from; the next version
    of the group can then be hashed from it without a pass over the config.
    """

    group_id: str
    version: int
    hash: str
    config: Config
    digest: ConfigDigest | None = field(default=None, compare=False, repr=False)


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

    It depends on the entities and plain values only, not on the order of
    keys or of the entities in a list.
    """
    return ConfigDigest.of(config).hexdigest()


def make_snapshot(
    group_id: str, version: int, config: Config, digest: ConfigDigest | None = None
) -> Snapshot:
    """Return the snapshot of `config` as version `version` of a group.

    `digest`, when given, must be the config's (:meth:`ConfigDigest.of`).
    """
    if digest is None:
        digest = ConfigDigest.of(config)
    return Snapshot(group_id, version, digest.hexdigest(), config, digest)


def merge_digests(digests: Sequence[ConfigDigest | None]) -> ConfigDigest | None:
    """Return the digest of the merge of configs with these digests.

    None when a digest is missing or the configs are not shaped as
    :func:`build_config` makes them; the merge is then hashed whole.
    """
    fields = orjson.dumps(
        {"_format_version": FORMAT_VERSION}, option=orjson.OPT_SORT_KEYS
    )
    sums = dict.fromkeys(ENTITY_KEYS, 0)
    for digest in digests:
        if (
            digest is None
            or digest.fields != fields
            or not digest.sums.keys() <= sums.keys()
        ):
            return None
        for key, total in digest.sums.items():
            sums[key] += total
    return ConfigDigest(fields, {key: total % _MODULUS for key, total in sums.items()})


def _display_name(key: str, entity: Mapping[str, Any]) -> str | None:
    for name in _DISPLAY_FIELDS[key]:
        value = entity.get(name)
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

    for name in indexes:
        seen: dict[Any, list[tuple[str, Mapping[str, Any]]]] = {}
        for cluster_id, config in members:
            for entity in config.get(key, ()):
                if name == "@global":
                    if not _is_global(entity):
                        continue
                    value: Any = entity.get("name")
                else:
                    value = entity.get(name)
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
