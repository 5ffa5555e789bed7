"""Services as Kong's Admin API validates them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema import validate_entity

NOW = 1_700_000_000


def _nothing(entity_type: str, key: Mapping[str, Any]) -> str | None:
    return None


def _service(body: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return validate_entity("services", body, now=NOW, resolve=_nothing, **kwargs)


def _refused(body: Mapping[str, Any], **kwargs: Any) -> dict[str, str]:
    """Return the {field: rule} of every parameter the body is refused for."""
    with pytest.raises(ValidationError) as caught:
        _service(body, **kwargs)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def test_a_service_gets_kongs_defaults() -> None:
    service = _service({"host": "example.com"})
    assert service["protocol"] == "http"
    assert service["port"] == 80
    assert service["path"] is None
    assert service["retries"] == 5
    assert service["connect_timeout"] == 60000
    assert service["read_timeout"] == 60000
    assert service["write_timeout"] == 60000
    assert service["enabled"] is True
    assert service["name"] is None
    assert service["tags"] is None
    assert service["tls_verify"] is None


def test_a_new_service_gets_a_uuid_and_timestamps() -> None:
    service = _service({"host": "example.com"})
    assert len(service["id"]) == 36
    assert service["created_at"] == service["updated_at"] == NOW


def test_a_given_valid_id_is_kept() -> None:
    given = "9748f662-7711-4a90-8186-dc02f10eb0f5"
    assert _service({"id": given, "host": "example.com"})["id"] == given


def test_a_given_id_must_be_a_uuid() -> None:
    assert _refused({"id": "nope", "host": "example.com"}) == {"id": "uuid"}


def test_the_url_shorthand_sets_protocol_host_port_and_path() -> None:
    service = _service({"url": "https://api.example.com:8443/v1"})
    assert (service["protocol"], service["host"], service["port"], service["path"]) == (
        "https",
        "api.example.com",
        8443,
        "/v1",
    )
    assert "url" not in service


def test_the_url_shorthand_defaults_the_port_by_scheme() -> None:
    assert _service({"url": "https://example.com"})["port"] == 443
    assert _service({"url": "http://example.com"})["port"] == 80


def test_an_https_service_defaults_to_port_443() -> None:
    assert _service({"protocol": "https", "host": "example.com"})["port"] == 443


def test_the_url_shorthand_is_refused_together_with_its_parts() -> None:
    assert _refused({"url": "http://a.example", "host": "b.example"}) == {
        "host": "conflict"
    }


def test_a_url_without_a_host_is_refused() -> None:
    assert _refused({"url": "http://"}) == {"url": "url"}


def test_a_url_with_a_query_string_is_refused() -> None:
    assert _refused({"url": "http://example.com/?a=b"}) == {"url": "url"}


def test_the_host_is_required() -> None:
    assert _refused({"name": "svc"}) == {"host": "required"}


def test_a_protocol_other_than_http_is_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        _service({"protocol": "grpc", "host": "example.com"})
    (param,) = caught.value.invalid_parameters
    assert (param.field, param.rule) == ("protocol", "one_of")
    assert "Portico proxies HTTP" in param.reason


def test_a_path_must_start_with_a_slash() -> None:
    assert _refused({"host": "example.com", "path": "v1"}) == {"path": "path"}


def test_a_path_must_not_have_empty_segments() -> None:
    assert _refused({"host": "example.com", "path": "/a//b"}) == {"path": "path"}


def test_a_host_must_not_carry_a_port() -> None:
    assert _refused({"host": "example.com:80"}) == {"host": "host"}


def test_an_ip_host_is_accepted() -> None:
    assert _service({"host": "10.0.0.1"})["host"] == "10.0.0.1"


def test_timeouts_must_be_positive_milliseconds() -> None:
    assert _refused({"host": "example.com", "read_timeout": 0}) == {
        "read_timeout": "between"
    }


def test_a_port_above_65535_is_refused() -> None:
    assert _refused({"host": "example.com", "port": 70000}) == {"port": "between"}


def test_a_name_follows_kongs_name_rule() -> None:
    assert _refused({"host": "example.com", "name": "a b"}) == {"name": "name"}


def test_a_name_may_use_dots_dashes_underscores_and_tildes() -> None:
    assert _service({"host": "example.com", "name": "a.b-c_d~e"})["name"] == "a.b-c_d~e"


def test_tags_must_be_a_list_of_strings() -> None:
    assert _refused({"host": "example.com", "tags": ["ok", 3]}) == {"tags[1]": "type"}


def test_an_unknown_field_is_refused() -> None:
    assert _refused({"host": "example.com", "colour": "red"}) == {
        "colour": "unknown_field"
    }


def test_every_offending_field_is_reported_at_once() -> None:
    assert _refused({"port": "80", "retries": -1, "colour": "red"}) == {
        "colour": "unknown_field",
        "host": "required",
        "port": "type",
        "retries": "between",
    }


def test_a_client_certificate_is_refused_as_unsupported() -> None:
    body = {"host": "example.com", "client_certificate": {"id": "x"}}
    assert _refused(body) == {"client_certificate": "unsupported"}


def test_an_update_merges_the_body_over_the_existing_service() -> None:
    existing = _service({"host": "example.com", "name": "svc"})
    updated = _service({"port": 8080}, existing=existing)
    assert (updated["name"], updated["host"], updated["port"]) == (
        "svc",
        "example.com",
        8080,
    )


def test_an_update_keeps_id_and_created_at_and_moves_updated_at() -> None:
    existing = _service({"host": "example.com"})
    updated = validate_entity(
        "services", {"retries": 1}, existing=existing, now=NOW + 5, resolve=_nothing
    )
    assert updated["id"] == existing["id"]
    assert updated["created_at"] == NOW
    assert updated["updated_at"] == NOW + 5


def test_an_update_cannot_change_the_id() -> None:
    existing = _service({"host": "example.com"})
    body = {"id": "9748f662-7711-4a90-8186-dc02f10eb0f5"}
    assert _refused(body, existing=existing) == {"id": "immutable"}


def test_an_update_with_a_url_replaces_the_url_parts() -> None:
    existing = _service({"url": "http://a.example/x"})
    updated = _service({"url": "https://b.example"}, existing=existing)
    assert (updated["protocol"], updated["host"], updated["port"], updated["path"]) == (
        "https",
        "b.example",
        443,
        None,
    )


def test_a_required_field_cannot_be_set_to_null() -> None:
    assert _refused({"host": "example.com", "retries": None}) == {"retries": "required"}


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError):
        validate_entity("services", ["host"], now=NOW, resolve=_nothing)  # type: ignore[arg-type]


def test_a_url_without_a_scheme_is_refused() -> None:
    assert _refused({"url": "example.com/path"}) == {"url": "url"}


def test_a_url_with_a_bad_port_is_refused() -> None:
    assert _refused({"url": "http://example.com:99999"}) == {"url": "url"}


def test_a_url_with_an_ipv6_host_keeps_its_brackets() -> None:
    assert _service({"url": "http://[::1]:8080"})["host"] == "[::1]"


def test_a_url_must_be_a_string() -> None:
    assert _refused({"url": 5}) == {"url": "type"}
