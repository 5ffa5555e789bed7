"""Turn an admin API body into a complete entity, or say everything wrong with it.

:func:`validate_entity` is the single gate every entity passes before the
control plane stores it: it fills Kong's defaults, normalises foreign keys to
``{"id": ...}``, hashes basic-auth passwords, generates key-auth keys, and
refuses a body with a :exc:`~shared.errors.ValidationError` that lists every
offending field at once.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.credentials import hash_password, is_password_hash
from shared.errors import InvalidParameter, ValidationError
from shared.schema.entities import ENTITIES
from shared.schema.fields import Checker, Field, merge_record
from shared.schema.plugins import PLUGIN_SCHEMAS
from shared.schema.services import URL_PARTS, expand_url
from shared.schema.typedefs import is_uuid

# (entity type, {"id": ...} or {endpoint key: ...}) -> id, or None if unknown.
Resolver = Callable[[str, Mapping[str, Any]], str | None]

_AUTOMATIC = ("id", "created_at", "updated_at")


def _foreign_hook(resolve: Resolver) -> Callable[..., Any]:
    def hook(spec: Field, value: Any, path: str, errors: list[InvalidParameter]) -> Any:
        target = spec.reference
        assert target is not None, f"foreign field {path} names no entity type"
        key_field = ENTITIES[target].endpoint_key

        if isinstance(value, str):
            value = {"id": value} if is_uuid(value) else {key_field or "id": value}
        if not isinstance(value, Mapping) or len(value) != 1:
            reason = "" if key_field is None else f' or {{"{key_field}": ...}}'
            errors.append(
                InvalidParameter(path, "type", f'expected {{"id": ...}}{reason}')
            )
            return value

        ((key, key_value),) = value.items()
        if key not in ("id", key_field):
            errors.append(
                InvalidParameter(path, "type", f"unexpected reference key '{key}'")
            )
            return value
        if not isinstance(key_value, str):
            errors.append(
                InvalidParameter(f"{path}.{key}", "type", "expected a string")
            )
            return value
        if key == "id" and not is_uuid(key_value):
            errors.append(InvalidParameter(f"{path}.id", "uuid", "expected a UUID"))
            return value

        found = resolve(target, {key: key_value})
        if found is None:
            reason = (
                f"does not reference an existing {target} entity ({key}={key_value})"
            )
            errors.append(InvalidParameter(path, "foreign_key", reason))
            return value
        return {"id": found}

    return hook


def _entity_id(
    body: Mapping[str, Any], existing: Mapping[str, Any] | None, checker: Checker
) -> str:
    given = body.get("id")
    if existing is not None:
        if given is not None and given != existing["id"]:
            checker.fail("id", "immutable", "an entity's id cannot be changed")
        return str(existing["id"])
    if given is None:
        return str(uuid.uuid4())
    if not is_uuid(given):
        checker.fail("id", "uuid", "expected a valid UUID")
        return ""
    return str(given)


def _merge(
    body: Mapping[str, Any], existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    if existing is None:
        return dict(body)
    merged = dict(existing)
    merged.update(body)
    return merged


def _check_plugin(
    body: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    entity: dict[str, Any],
    checker: Checker,
) -> None:
    name = entity.get("name")
    plugin = PLUGIN_SCHEMAS.get(name) if isinstance(name, str) else None
    if plugin is None:
        if isinstance(name, str):
            known = ", ".join(sorted(PLUGIN_SCHEMAS))
            reason = f"plugin '{name}' is not available; known plugins: {known}"
            checker.fail("name", "unknown_plugin", reason)
        return

    config = body.get("config")
    if existing is not None and existing.get("name") == name:
        config = existing.get("config") if "config" not in body else config
        if "config" in body and isinstance(config, Mapping):
            config = merge_record(plugin.config, existing.get("config"), config)
    entity["config"] = checker.check(
        plugin.config, {} if config is None else config, "config"
    )

    protocols = entity.get("protocols")
    if protocols is None:
        entity["protocols"] = list(plugin.protocols)
    elif isinstance(protocols, list):
        allowed = Field("string", one_of=plugin.protocols)
        for i, protocol in enumerate(protocols):
            if isinstance(protocol, str):
                checker.check(allowed, protocol, f"protocols[{i}]")

    if plugin.no_consumer and entity.get("consumer") is not None:
        reason = f"the {name} plugin cannot be scoped to a consumer"
        checker.fail("consumer", "no_consumer", reason)


def _prepare(
    type_name: str,
    data: dict[str, Any],
    existing: Mapping[str, Any] | None,
    checker: Checker,
) -> None:
    if type_name == "services":
        expand_url(data, existing, checker)
    elif type_name == "keyauth_credentials" and existing is None:
        if data.get("key") is None:
            data["key"] = secrets.token_hex(16)


def validate_entity(
    type_name: str,
    body: Mapping[str, Any],
    *,
    existing: Mapping[str, Any] | None = None,
    now: int,
    resolve: Resolver,
) -> dict[str, Any]:
    """Return the complete entity `body` describes, as the Admin API shows it.

    With `existing` (an update), `body` is merged over it; a plugin's config
    merges record by record. Raises ValidationError naming every offending
    field; a foreign key `resolve` cannot find is one of them.
    """
    schema = ENTITIES[type_name]
    if not isinstance(body, Mapping):
        raise ValidationError(
            "schema violation",
            [InvalidParameter("@body", "type", "expected a JSON object")],
        )

    checker = Checker(foreign=_foreign_hook(resolve))
    entity_id = _entity_id(body, existing, checker)
    data = {k: v for k, v in body.items() if k not in _AUTOMATIC}
    _prepare(type_name, data, existing, checker)

    merged = _merge(data, existing)
    merged["id"] = entity_id or None
    entity = checker.check_record(schema.record, merged, "")
    if any(e.field == "url" for e in checker.errors):
        # A bad url already explains why host and friends are missing.
        checker.errors[:] = [
            e
            for e in checker.errors
            if not (e.rule == "required" and e.field in URL_PARTS)
        ]
    if type_name == "plugins":
        _check_plugin(data, existing, entity, checker)

    if checker.errors:
        reasons = "; ".join(f"{e.field}: {e.reason}" for e in checker.errors)
        raise ValidationError(f"schema violation ({reasons})", checker.errors)

    entity["id"] = entity_id
    entity["created_at"] = int(existing["created_at"]) if existing else now
    entity["updated_at"] = now
    if type_name == "basicauth_credentials" and "password" in data:
        entity["password"] = _stored_password(data["password"])
    return entity


def _stored_password(password: str) -> str:
    # A password already in stored form is kept as it is, like Kong's
    # `_transform: false`: configs exported from one group load into another
    # without anyone knowing the clear text.
    return password if is_password_hash(password) else hash_password(password)


def _without_secrets(spec: Field, value: Any) -> Any:
    if spec.type != "record" or not isinstance(value, Mapping):
        return value
    result = dict(value)
    for name, sub in spec.fields.items():
        if name not in result:
            continue
        if sub.secret:
            result[name] = None
        elif sub.type == "record":
            result[name] = _without_secrets(sub, result[name])
    return result


def public_view(type_name: str, entity: Mapping[str, Any]) -> dict[str, Any]:
    """Return `entity` as the admin API may show it: secrets left out.

    A basic-auth password (even hashed) is dropped; a secret inside a plugin's
    config (such as a Redis password) reads null.
    """
    schema = ENTITIES[type_name]
    view = {k: v for k, v in entity.items() if k not in schema.secret_fields}
    if type_name == "plugins":
        plugin = PLUGIN_SCHEMAS.get(str(entity.get("name")))
        if plugin is not None and "config" in view:
            view["config"] = _without_secrets(plugin.config, view["config"])
    return view


def _ref_id(entity: Mapping[str, Any], field: str) -> str | None:
    ref = entity.get(field)
    return str(ref["id"]) if isinstance(ref, Mapping) else None


def plugin_scope_key(
    entity: Mapping[str, Any],
) -> tuple[str, str | None, str | None, str | None]:
    """Return (name, service id, route id, consumer id) of a plugin.

    A runtime group holds at most one plugin per key: one global basic-auth,
    one basic-auth per service, and so on.
    """
    return (
        str(entity["name"]),
        _ref_id(entity, "service"),
        _ref_id(entity, "route"),
        _ref_id(entity, "consumer"),
    )
