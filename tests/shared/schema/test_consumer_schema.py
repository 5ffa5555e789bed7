"""Consumers, their credentials and their ACL groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.credentials import hash_password, is_password_hash, verify_password
from shared.errors import ValidationError
from shared.schema import ENTITIES, dependents, public_view, validate_entity

NOW = 1_700_000_000
BOB = "8a388226-80e8-4027-a486-25e4f7db5d21"


def _resolve(entity_type: str, key: Mapping[str, Any]) -> str | None:
    if entity_type == "consumers" and key in ({"id": BOB}, {"username": "bob"}):
        return BOB
    return None


def _entity(type_name: str, body: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return validate_entity(type_name, body, now=NOW, resolve=_resolve, **kwargs)


def _refused(type_name: str, body: Mapping[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        _entity(type_name, body)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def test_a_consumer_needs_a_username_or_a_custom_id() -> None:
    assert _refused("consumers", {"tags": ["a"]}) == {"@entity": "at_least_one_of"}


def test_a_consumer_with_only_a_custom_id_is_accepted() -> None:
    consumer = _entity("consumers", {"custom_id": "4200"})
    assert consumer["custom_id"] == "4200" and consumer["username"] is None


def test_a_basic_auth_password_is_stored_hashed() -> None:
    body = {"consumer": {"id": BOB}, "username": "bob", "password": "s3cret"}
    credential = _entity("basicauth_credentials", body)
    assert is_password_hash(credential["password"])
    assert verify_password("s3cret", credential["password"])


def test_a_basic_auth_password_is_required_on_create() -> None:
    body = {"consumer": {"id": BOB}, "username": "bob"}
    assert _refused("basicauth_credentials", body) == {"password": "required"}


def test_an_update_without_a_password_keeps_the_stored_hash() -> None:
    body = {"consumer": {"id": BOB}, "username": "bob", "password": "s3cret"}
    existing = _entity("basicauth_credentials", body)
    updated = _entity(
        "basicauth_credentials", {"username": "robert"}, existing=existing
    )
    assert updated["password"] == existing["password"]
    assert updated["username"] == "robert"


def test_an_update_with_a_password_hashes_the_new_one() -> None:
    body = {"consumer": {"id": BOB}, "username": "bob", "password": "old"}
    existing = _entity("basicauth_credentials", body)
    updated = _entity("basicauth_credentials", {"password": "new"}, existing=existing)
    assert verify_password("new", updated["password"])


def test_the_public_view_never_shows_a_password() -> None:
    body = {"consumer": {"id": BOB}, "username": "bob", "password": "s3cret"}
    view = public_view("basicauth_credentials", _entity("basicauth_credentials", body))
    assert "password" not in view
    assert view["username"] == "bob"


def test_a_credential_needs_a_consumer() -> None:
    body = {"username": "bob", "password": "pw"}
    assert _refused("basicauth_credentials", body) == {"consumer": "required"}


def test_a_credential_of_an_unknown_consumer_is_refused() -> None:
    body = {"consumer": {"username": "alice"}, "username": "a", "password": "pw"}
    assert _refused("basicauth_credentials", body) == {"consumer": "foreign_key"}


def test_a_consumer_given_by_username_is_resolved() -> None:
    body = {"consumer": {"username": "bob"}, "group": "admins"}
    assert _entity("acls", body)["consumer"] == {"id": BOB}


def test_a_key_is_generated_when_absent() -> None:
    credential = _entity("keyauth_credentials", {"consumer": {"id": BOB}})
    key = credential["key"]
    assert len(key) == 32 and int(key, 16) >= 0


def test_generated_keys_differ() -> None:
    one = _entity("keyauth_credentials", {"consumer": {"id": BOB}})
    two = _entity("keyauth_credentials", {"consumer": {"id": BOB}})
    assert one["key"] != two["key"]


def test_a_given_key_is_kept() -> None:
    body = {"consumer": {"id": BOB}, "key": "my-key"}
    assert _entity("keyauth_credentials", body)["key"] == "my-key"


def test_a_key_ttl_is_optional_and_bounded() -> None:
    assert _entity("keyauth_credentials", {"consumer": {"id": BOB}})["ttl"] is None
    body = {"consumer": {"id": BOB}, "ttl": -1}
    assert _refused("keyauth_credentials", body) == {"ttl": "between"}


def test_an_acl_needs_a_group() -> None:
    assert _refused("acls", {"consumer": {"id": BOB}}) == {"group": "required"}


def test_credentials_and_acls_are_deleted_with_their_consumer() -> None:
    cascading = {(d.entity_type, d.field) for d in dependents("consumers") if d.cascade}
    assert cascading == {
        ("basicauth_credentials", "consumer"),
        ("keyauth_credentials", "consumer"),
        ("acls", "consumer"),
        ("plugins", "consumer"),
    }


def test_routes_block_the_deletion_of_their_service() -> None:
    blocking = [d for d in dependents("services") if not d.cascade]
    assert [(d.entity_type, d.field) for d in blocking] == [("routes", "service")]


def test_entity_schemas_name_their_endpoint_and_key() -> None:
    basic = ENTITIES["basicauth_credentials"]
    assert (basic.endpoint, basic.endpoint_key, basic.secret_fields) == (
        "basic-auth",
        "username",
        ("password",),
    )
    assert ENTITIES["consumers"].unique == ("username", "custom_id")
    assert ENTITIES["acls"].unique_together == (("consumer", "group"),)


def test_a_password_already_in_stored_form_is_kept_as_it_is() -> None:
    stored = hash_password("s3cret")
    body = {"consumer": {"id": BOB}, "username": "bob", "password": stored}
    assert _entity("basicauth_credentials", body)["password"] == stored
