"""Load a declarative config file (Kong's format, JSON or YAML) as a snapshot.

The file holds the entity lists of a config (`services`, `routes`,
`consumers`, `plugins`, `basicauth_credentials`, ...). As in Kong's
declarative format, entities may also be nested: routes and plugins inside a
service, plugins inside a route, credentials and plugins inside a consumer.
A foreign key may be an id, a name, or `{"id": ...}` / `{"name": ...}`.
Entities without an id get one derived from their name, so reloading an
unchanged file gives the same config hash.

Every entity goes through `shared.schema.validate_entity`, which fills in
Kong's defaults; clear-text basic-auth passwords are hashed at load.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from shared.credentials import is_password_hash
from shared.errors import InvalidParameter, ValidationError
from shared.schema import ENTITIES, Resolver, validate_entity
from shared.snapshot import ENTITY_KEYS, Snapshot, build_config, make_snapshot

GROUP_ID = "declarative"

# Where nested lists may appear, and the foreign key they set on children.
_NESTED: dict[str, dict[str, str]] = {
    "services": {"routes": "service", "plugins": "service"},
    "routes": {"plugins": "route"},
    "consumers": {
        "plugins": "consumer",
        "basicauth_credentials": "consumer",
        "keyauth_credentials": "consumer",
        "acls": "consumer",
    },
}
_NAMESPACE = uuid.UUID("5d1c6a8e-3f0b-4c59-9b1e-6f1e0c7d2a41")
_META = ("_format_version", "_transform", "_comment", "_workspace")


def _parse(path: Path) -> Mapping[str, Any]:
    """Read and parse the file; ValidationError when it is not a mapping."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        document = (
            orjson.loads(data) if path.suffix == ".json" else yaml.safe_load(data)
        )
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValidationError(f"{path} is not valid JSON or YAML: {exc}") from exc
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ValidationError(f"{path} must hold a mapping of entity lists")
    return document


def _flatten(document: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Lift nested entities into flat lists, children pointing at parents."""
    flat: dict[str, list[dict[str, Any]]] = {key: [] for key in ENTITY_KEYS}
    unknown = [key for key in document if key not in flat and key not in _META]
    if unknown:
        raise ValidationError(
            "unknown entity types in declarative config",
            [
                InvalidParameter(k, "unknown_field", "unknown entity type")
                for k in unknown
            ],
        )

    def visit(key: str, items: Any, parent: tuple[str, str] | None, where: str) -> None:
        if not isinstance(items, list):
            raise ValidationError(
                f"{where} must be a list",
                [InvalidParameter(where, "type", "expected a list")],
            )
        for position, item in enumerate(items):
            here = f"{where}[{position}]"
            if not isinstance(item, Mapping):
                raise ValidationError(
                    f"{here} must be a mapping",
                    [InvalidParameter(here, "type", "expected a mapping")],
                )
            entity = dict(item)
            children = {
                child: entity.pop(child)
                for child in _NESTED.get(key, {})
                if child in entity
            }
            if parent is not None:
                entity[parent[0]] = {"id": parent[1]}
            if entity.get("id") is None:
                entity["id"] = _derived_id(key, entity, here)
            flat[key].append(entity)
            for child, items_ in children.items():
                fk = _NESTED[key][child]
                visit(child, items_, (fk, str(entity["id"])), f"{here}.{child}")

    for key in ENTITY_KEYS:
        if key in document:
            visit(key, document[key], None, key)
    # `visit` refers to itself through its closure: break that cycle, or it
    # keeps every entity alive until the cyclic collector runs.
    visit = None  # type: ignore[assignment]
    return flat


def _derived_id(key: str, entity: Mapping[str, Any], where: str) -> str:
    """Return a stable id for an entity the file gives without one."""
    name = entity.get("name") or entity.get("username") or entity.get("custom_id")
    parent = [f"{k}={v}" for k, v in sorted(entity.items()) if isinstance(v, dict)]
    basis = f"{key}:{name}:{parent}" if name else f"{key}:{where}"
    return str(uuid.uuid5(_NAMESPACE, basis))


class DeclarativeLoader:
    """Turn a declarative file into snapshots; versions count the changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version = 0
        self._last_hash: str | None = None
        # (credential id, clear text) -> stored hash: a reload keeps the salt,
        # so an unchanged file keeps its config hash.
        self._hashed: dict[tuple[str, str], str] = {}
        # (type, id) -> the entity of the last load. An entity that a reload
        # leaves as it was is that very object, with its first timestamps:
        # the compile then sees at a glance what it can keep.
        self._loaded: dict[tuple[str, str], dict[str, Any]] = {}
        # The routes of the last load that are not the previous load's.
        self.fresh_routes: list[dict[str, Any]] = []

    def load(self) -> Snapshot:
        """Read the file and return its snapshot; ValidationError if invalid."""
        flat = _flatten(_parse(self.path))
        try:
            mtime = int(self.path.stat().st_mtime)
        except OSError:
            mtime = 0
        resolve = _resolver(flat)
        entities: dict[str, list[dict[str, Any]]] = {}
        loaded: dict[tuple[str, str], dict[str, Any]] = {}
        for key in ENTITY_KEYS:
            entities[key] = found = []
            for position, raw in enumerate(flat[key]):
                entity = self._validate(key, raw, position, mtime, resolve)
                entity = self._kept(key, raw, entity)
                loaded[(key, str(entity["id"]))] = entity
                found.append(entity)
        previous, self._loaded = self._loaded, loaded
        self.fresh_routes = [
            route
            for route in entities["routes"]
            if previous.get(("routes", str(route["id"]))) is not route
        ]
        snapshot = make_snapshot(GROUP_ID, self._version, build_config(entities))
        if snapshot.hash != self._last_hash:
            # Only a change makes a new version: an unchanged file reloads as is.
            self._version += 1
            self._last_hash = snapshot.hash
            snapshot = replace(snapshot, version=self._version)
        return snapshot

    def _kept(
        self, key: str, raw: Mapping[str, Any], entity: dict[str, Any]
    ) -> dict[str, Any]:
        """Return the last load's entity when this one is the same.

        Timestamps the file does not give come from its modification time;
        they do not make an otherwise equal entity a new one, and a changed
        entity keeps the time it was first loaded as its `created_at`.
        """
        before = self._loaded.get((key, str(entity["id"])))
        if before is None:
            return entity
        stamps = {
            stamp: before.get(stamp)
            for stamp in ("created_at", "updated_at")
            if not isinstance(raw.get(stamp), int) and stamp in entity
        }
        if before == (entity | stamps if stamps else entity):
            return before
        if "created_at" in stamps:
            entity["created_at"] = stamps["created_at"]  # changed, not created
        return entity

    def _validate(
        self,
        key: str,
        raw: dict[str, Any],
        position: int,
        mtime: int,
        resolve: Resolver,
    ) -> dict[str, Any]:
        clear = None
        existing = None
        body = {k: v for k, v in raw.items() if k not in ("created_at", "updated_at")}
        password = body.get("password")
        if key == "basicauth_credentials" and isinstance(password, str):
            if is_password_hash(password):
                # Validated as an update that keeps the stored hash as it is.
                body.pop("password")
                existing = {"id": body["id"], "created_at": mtime, "password": password}
            else:
                clear = password
        try:
            entity = validate_entity(
                key, body, existing=existing, now=mtime, resolve=resolve
            )
        except ValidationError as exc:
            where = f"{key}[{position}]"
            raise ValidationError(
                f"{where}: {exc.detail}",
                [
                    InvalidParameter(f"{where}.{p.field}", p.rule, p.reason)
                    for p in exc.invalid_parameters
                ],
            ) from exc
        for stamp in ("created_at", "updated_at"):
            if isinstance(raw.get(stamp), int):
                entity[stamp] = raw[stamp]
        if clear is not None:
            cached = self._hashed.setdefault((entity["id"], clear), entity["password"])
            entity["password"] = cached
        return entity


def _resolver(flat: Mapping[str, list[dict[str, Any]]]) -> Resolver:
    """Return a resolver finding entities of the file by id or endpoint key."""
    index: dict[tuple[str, str, str], str] = {}
    for target, entities in flat.items():
        key_field = ENTITIES[target].endpoint_key
        for entity in entities:
            entity_id = str(entity["id"])
            index[(target, "id", entity_id)] = entity_id
            if key_field and isinstance(entity.get(key_field), str):
                index.setdefault((target, key_field, entity[key_field]), entity_id)

    def resolve(target: str, key: Mapping[str, Any]) -> str | None:
        ((field, value),) = key.items()
        return index.get((target, field, str(value)))

    return resolve
