"""The entity types of a runtime group and what the control plane needs of each.

An :class:`EntitySchema` tells the admin API how an entity is addressed
(endpoint, the field usable instead of its id), what must be unique within a
runtime group, which foreign keys it holds and what happens on deletion of
the entity they point at, and which fields are secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shared.errors import InvalidParameter
from shared.schema import routes, services
from shared.schema.fields import Field
from shared.schema.typedefs import (
    boolean,
    foreign,
    name_field,
    string,
    tags_field,
    timestamp_field,
    uuid_field,
)


@dataclass(frozen=True, eq=False)
class EntitySchema:
    """Describe one entity type of a runtime group, as Kong's Admin API has it.

    `cascade_from` lists the foreign keys whose target's deletion deletes this
    entity too; a foreign key not listed there blocks the target's deletion
    while this entity refers to it (a service with routes cannot be deleted).
    """

    name: str
    endpoint: str
    endpoint_key: str | None
    unique: tuple[str, ...]
    foreign: Mapping[str, str]
    cascade_from: tuple[str, ...]
    secret_fields: tuple[str, ...]
    record: Field
    # Combinations of fields unique together within a runtime group.
    unique_together: tuple[tuple[str, ...], ...] = ()
    # Fields accepted on input that stand for others and are never stored.
    write_only: Mapping[str, Field] = field(default_factory=dict)


@dataclass(frozen=True)
class Dependent:
    """Name a foreign key that points at an entity type, and its on-delete rule."""

    entity_type: str
    field: str
    cascade: bool


def _common() -> dict[str, Field]:
    return {
        "id": uuid_field(),
        "created_at": timestamp_field(),
        "updated_at": timestamp_field(),
    }


def _username_or_custom_id(
    consumer: Mapping[str, Any], path: str
) -> list[InvalidParameter]:
    if consumer.get("username") is None and consumer.get("custom_id") is None:
        reason = (
            "at least one of these fields must be non-empty: 'custom_id', 'username'"
        )
        return [InvalidParameter("@entity", "at_least_one_of", reason)]
    return []


_CONSUMER = Field(
    "record",
    required=True,
    fields={
        **_common(),
        "username": string(),
        "custom_id": string(),
        "tags": tags_field(),
    },
    record_checks=(_username_or_custom_id,),
)

_PLUGIN = Field(
    "record",
    required=True,
    fields={
        **_common(),
        "name": string(required=True),
        "instance_name": name_field(),
        "route": foreign("routes"),
        "service": foreign("services"),
        "consumer": foreign("consumers"),
        # Checked against the named plugin's own schema.
        "config": Field("any"),
        # Checked against the named plugin's protocols.
        "protocols": Field("array", elements=Field("string")),
        "enabled": boolean(True),
        "tags": tags_field(),
    },
)

_BASICAUTH = Field(
    "record",
    required=True,
    fields={
        **_common(),
        "consumer": foreign("consumers", required=True),
        "username": string(required=True),
        "password": string(required=True, secret=True),
        "tags": tags_field(),
    },
)

_KEYAUTH = Field(
    "record",
    required=True,
    fields={
        **_common(),
        "consumer": foreign("consumers", required=True),
        "key": string(required=True),
        # Seconds the key stays valid after `created_at`; null never expires.
        "ttl": Field("integer", between=(0, 100_000_000)),
        "tags": tags_field(),
    },
)

_ACL = Field(
    "record",
    required=True,
    fields={
        **_common(),
        "consumer": foreign("consumers", required=True),
        "group": string(required=True),
        "tags": tags_field(),
    },
)

_SCHEMAS = (
    EntitySchema(
        name="services",
        endpoint="services",
        endpoint_key="name",
        unique=("name",),
        foreign={},
        cascade_from=(),
        secret_fields=(),
        record=services.RECORD,
        write_only=services.WRITE_ONLY,
    ),
    EntitySchema(
        name="routes",
        endpoint="routes",
        endpoint_key="name",
        unique=("name",),
        foreign={"service": "services"},
        cascade_from=(),
        secret_fields=(),
        record=routes.RECORD,
    ),
    EntitySchema(
        name="consumers",
        endpoint="consumers",
        endpoint_key="username",
        unique=("username", "custom_id"),
        foreign={},
        cascade_from=(),
        secret_fields=(),
        record=_CONSUMER,
    ),
    EntitySchema(
        name="plugins",
        endpoint="plugins",
        endpoint_key=None,
        unique=("instance_name",),
        foreign={"service": "services", "route": "routes", "consumer": "consumers"},
        cascade_from=("service", "route", "consumer"),
        secret_fields=(),
        record=_PLUGIN,
    ),
    EntitySchema(
        name="basicauth_credentials",
        endpoint="basic-auth",
        endpoint_key="username",
        unique=("username",),
        foreign={"consumer": "consumers"},
        cascade_from=("consumer",),
        secret_fields=("password",),
        record=_BASICAUTH,
    ),
    EntitySchema(
        name="keyauth_credentials",
        endpoint="key-auth",
        endpoint_key="key",
        unique=("key",),
        foreign={"consumer": "consumers"},
        cascade_from=("consumer",),
        secret_fields=(),
        record=_KEYAUTH,
    ),
    EntitySchema(
        name="acls",
        endpoint="acls",
        endpoint_key=None,
        unique=(),
        foreign={"consumer": "consumers"},
        cascade_from=("consumer",),
        secret_fields=(),
        record=_ACL,
        unique_together=(("consumer", "group"),),
    ),
)

ENTITIES: Mapping[str, EntitySchema] = MappingProxyType({s.name: s for s in _SCHEMAS})

BY_ENDPOINT: Mapping[str, EntitySchema] = MappingProxyType(
    {s.endpoint: s for s in _SCHEMAS}
)


def dependents(type_name: str) -> tuple[Dependent, ...]:
    """Return the foreign keys of other entity types that point at `type_name`.

    Deleting an entity deletes the dependents whose `cascade` is true and is
    refused while one whose `cascade` is false still points at it.
    """
    return tuple(
        Dependent(schema.name, fk, fk in schema.cascade_from)
        for schema in _SCHEMAS
        for fk, target in schema.foreign.items()
        if target == type_name
    )
