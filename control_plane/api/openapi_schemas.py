"""JSON schemas of the admin API's bodies, for its OpenAPI document.

Entity schemas are derived from the shared model's fields
(:mod:`shared.schema`), so the document states the rules the control plane
enforces; the runtime group, membership and token schemas follow the checks
of their endpoints.
"""

from __future__ import annotations

from typing import Any

from control_plane.api.runtime_groups import AUTH_TYPES, MAX_LABELS
from control_plane.api.vocabulary import CLUSTER_TYPES_IN
from control_plane.auth import KINDS, ROLES
from control_plane.memberships import MAX_PER_CALL
from shared.schema import ENTITIES, PLUGIN_SCHEMAS, Field

Schema = dict[str, Any]

# Component names of the entity types, as Kong's documentation names them.
ENTITY_NAMES = {
    "services": "Service",
    "routes": "Route",
    "consumers": "Consumer",
    "plugins": "Plugin",
    "basicauth_credentials": "BasicAuthCredential",
    "keyauth_credentials": "KeyAuthCredential",
    "acls": "ACL",
}
_SET_BY_PORTICO = ("created_at", "updated_at")


def ref(name: str) -> Schema:
    """Return a reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def field_schema(spec: Field) -> Schema:
    """Return the JSON schema (OpenAPI 3.0 dialect) of one shared-model field."""
    kind = spec.type
    schema: Schema
    if kind == "any":
        return {}
    if kind == "foreign":
        schema = {
            "type": "object",
            "properties": {"id": {"type": "string", "format": "uuid"}},
            "additionalProperties": False,
        }
    elif kind == "record":
        schema = {
            "type": "object",
            "properties": {
                name: field_schema(sub) for name, sub in spec.fields.items()
            },
            "additionalProperties": False,
        }
    elif kind == "map":
        values = field_schema(spec.values) if spec.values is not None else {}
        schema = {"type": "object", "additionalProperties": values}
    elif kind == "array":
        items = field_schema(spec.elements) if spec.elements is not None else {}
        schema = {"type": "array", "items": items}
        if spec.len_min is not None:
            schema["minItems"] = spec.len_min
    else:
        schema = {"type": kind}
        if kind == "string" and spec.len_min is not None:
            schema["minLength"] = spec.len_min
    if spec.one_of is not None:
        schema["enum"] = list(spec.one_of)
    if spec.between is not None:
        schema["minimum"], schema["maximum"] = spec.between
    if spec.gt is not None:
        schema["minimum"] = spec.gt
        schema["exclusiveMinimum"] = True
    if spec.default is not None:
        schema["default"] = spec.default
    if not spec.required or spec.default is not None:
        schema["nullable"] = True
    return schema


def _entity_properties(type_name: str) -> dict[str, Schema]:
    schema = ENTITIES[type_name]
    properties = {
        name: field_schema(sub)
        for name, sub in schema.record.fields.items()
        if name not in _SET_BY_PORTICO
    }
    for name in schema.secret_fields:
        properties[name]["writeOnly"] = True
    for name, sub in schema.write_only.items():
        properties[name] = dict(field_schema(sub), writeOnly=True)
    if "id" in properties:
        properties["id"]["format"] = "uuid"
    return properties


def _with_timestamps(properties: dict[str, Schema]) -> dict[str, Schema]:
    stamp = {"type": "integer", "readOnly": True, "description": "epoch seconds"}
    return dict(properties, created_at=stamp, updated_at=stamp)


def _plugin_schemas() -> dict[str, Schema]:
    common = _entity_properties("plugins")
    variants: dict[str, Schema] = {}
    for name, plugin in sorted(PLUGIN_SCHEMAS.items()):
        properties = dict(common)
        properties["name"] = {"type": "string", "enum": [name]}
        properties["config"] = dict(field_schema(plugin.config), nullable=True)
        variants[f"Plugin.{name}"] = {
            "type": "object",
            "description": f"the {name} plugin",
            "properties": _with_timestamps(properties),
            "required": ["name"],
            "additionalProperties": False,
        }
    variants["Plugin"] = {
        "description": "a plugin: its config follows the schema of its name",
        "oneOf": [ref(key) for key in variants],
        "discriminator": {
            "propertyName": "name",
            "mapping": {name: ref(f"Plugin.{name}")["$ref"] for name in PLUGIN_SCHEMAS},
        },
    }
    return variants


def entity_schemas() -> dict[str, Schema]:
    """Return the component schema of each entity type, by component name."""
    schemas: dict[str, Schema] = {}
    for type_name, component in ENTITY_NAMES.items():
        if type_name == "plugins":
            schemas.update(_plugin_schemas())
            continue
        schemas[component] = {
            "type": "object",
            "properties": _with_timestamps(_entity_properties(type_name)),
            "additionalProperties": False,
        }
    for component in ENTITY_NAMES.values():
        schemas[f"{component}List"] = {
            "type": "object",
            "required": ["data", "next", "offset"],
            "properties": {
                "data": {"type": "array", "items": ref(component)},
                "next": {"type": "string", "nullable": True},
                "offset": {"type": "string", "nullable": True},
            },
        }
    return schemas


_LABELS: Schema = {
    "type": "object",
    "maxProperties": MAX_LABELS,
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 63},
    "description": "keys of 1 to 63 characters, not starting with kong, konnect, "
    "mesh, kic or _",
}
_PROXY_URLS: Schema = {
    "type": "array",
    "maxItems": 5,
    "items": {
        "type": "object",
        "required": ["host", "port", "protocol"],
        "additionalProperties": False,
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "protocol": {"type": "string", "enum": ["http", "https"]},
        },
    },
}
_GROUP_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 256},
    "description": {"type": "string", "maxLength": 2048},
    "auth_type": {"type": "string", "enum": list(AUTH_TYPES)},
    "proxy_urls": _PROXY_URLS,
    "labels": _LABELS,
}
_STAMP: Schema = {"type": "string", "format": "date-time"}


def group_schemas() -> dict[str, Schema]:
    """Return the schemas of runtime groups, memberships, statuses and tokens."""
    group = {
        "type": "object",
        "required": ["id", "name", "config", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "labels": _LABELS,
            "config": {
                "type": "object",
                "properties": {
                    "control_plane_endpoint": {"type": "string"},
                    "telemetry_endpoint": {"type": "string"},
                    "cluster_type": {"type": "string"},
                    "auth_type": {"type": "string"},
                    "cloud_gateway": {"type": "boolean"},
                    "proxy_urls": _PROXY_URLS,
                },
            },
            "created_at": _STAMP,
            "updated_at": _STAMP,
        },
    }
    conflict = {
        "type": "object",
        "required": ["cluster_id", "description", "resource"],
        "properties": {
            "cluster_id": {"type": "string", "format": "uuid"},
            "description": {"type": "string"},
            "resource": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    }
    return {
        "RuntimeGroup": group,
        "RuntimeGroupList": {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": {"type": "array", "items": ref("RuntimeGroup")},
                "meta": {"type": "object"},
            },
        },
        "CreateRuntimeGroup": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": dict(
                _GROUP_FIELDS,
                cluster_type={"type": "string", "enum": sorted(CLUSTER_TYPES_IN)},
                cloud_gateway={"type": "boolean", "enum": [False]},
            ),
        },
        "UpdateRuntimeGroup": {
            "type": "object",
            "additionalProperties": False,
            "properties": _GROUP_FIELDS,
        },
        "Members": {
            "type": "object",
            "required": ["members"],
            "additionalProperties": False,
            "properties": {
                "members": {
                    "type": "array",
                    "maxItems": MAX_PER_CALL,
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "additionalProperties": False,
                        "properties": {"id": {"type": "string", "format": "uuid"}},
                    },
                }
            },
        },
        "MemberStatus": {
            "type": "object",
            "required": ["is_member"],
            "properties": {"is_member": {"type": "boolean"}},
        },
        "CompositeStatus": {
            "type": "object",
            "required": ["id", "created_at", "updated_at", "state"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "created_at": _STAMP,
                "updated_at": _STAMP,
                "conflicts": {"type": "array", "items": conflict},
                "state": {"type": "string"},
            },
        },
        "CreateToken": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "role": {"type": "string", "enum": list(ROLES)},
                "kind": {"type": "string", "enum": list(KINDS)},
                "groups": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "runtime group ids or names (runtime group admins)",
                },
            },
        },
        "Token": {
            "type": "object",
            "required": ["id", "name", "kind", "role", "groups", "created_at"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": list(KINDS)},
                "role": {"type": "string", "enum": list(ROLES)},
                "groups": {"type": "array", "items": {"type": "string"}},
                "created_at": _STAMP,
                "token": {
                    "type": "string",
                    "description": "the token itself, shown only when created",
                },
            },
        },
        "Certificate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cert": {"type": "string", "description": "PEM"},
                "title": {"type": "string"},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["status", "title", "instance", "detail"],
            "properties": {
                "status": {"type": "integer"},
                "title": {"type": "string"},
                "type": {"type": "string"},
                "instance": {"type": "string"},
                "detail": {"type": "string"},
                "invalid_parameters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "rule", "reason"],
                        "properties": {
                            "field": {"type": "string"},
                            "rule": {"type": "string"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    }
