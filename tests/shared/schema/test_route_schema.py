"""Routes as Kong's Admin API validates them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema import compile_path_regex, normalize_path, validate_entity

NOW = 1_700_000_000
SERVICE_ID = "49fd316e-c457-481c-9fc7-8079153e4f3c"


def _resolve(entity_type: str, key: Mapping[str, Any]) -> str | None:
    if entity_type == "services" and key in ({"id": SERVICE_ID}, {"name": "svc"}):
        return SERVICE_ID
    return None


def _route(body: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return validate_entity("routes", body, now=NOW, resolve=_resolve, **kwargs)


def _refused(body: Mapping[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        _route(body)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def _reason(body: Mapping[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        _route(body)
    return caught.value.invalid_parameters[0].reason


def test_a_route_gets_kongs_defaults() -> None:
    route = _route({"paths": ["/mock"]})
    assert route["protocols"] == ["http", "https"]
    assert route["strip_path"] is True
    assert route["preserve_host"] is False
    assert route["regex_priority"] == 0
    assert route["path_handling"] == "v0"
    assert route["https_redirect_status_code"] == 426
    assert route["request_buffering"] is True
    assert route["response_buffering"] is True
    assert route["service"] is None
    assert route["methods"] is None and route["hosts"] is None


def test_a_route_needs_one_matching_field() -> None:
    assert _refused({"name": "r"}) == {"@entity": "at_least_one_of"}


def test_the_missing_matcher_message_follows_kong() -> None:
    assert _reason({"protocols": ["http"]}) == (
        "must set one of 'methods', 'hosts', 'headers', 'paths' "
        "when 'protocols' is 'http'"
    )


def test_empty_lists_do_not_count_as_matching_fields() -> None:
    assert _refused({"paths": [], "hosts": []}) == {"@entity": "at_least_one_of"}


def test_a_path_must_start_with_a_slash_or_a_tilde() -> None:
    assert _refused({"paths": ["mock"]}) == {"paths[0]": "regex"}


def test_a_regex_path_is_accepted() -> None:
    assert _route({"paths": [r"~/users/\d+$"]})["paths"] == [r"~/users/\d+$"]


def test_a_regex_path_must_compile() -> None:
    assert _refused({"paths": ["/ok", "~/(["]}) == {"paths[1]": "regex"}


def test_a_pcre_named_group_compiles() -> None:
    pattern = compile_path_regex("~/users/(?<id>[0-9]+)")
    match = pattern.match("/users/42/x")
    assert match is not None and match.group("id") == "42"


def test_a_path_must_not_have_empty_segments() -> None:
    assert _refused({"paths": ["/a//b"]}) == {"paths[0]": "regex"}


def test_a_path_must_be_properly_percent_encoded() -> None:
    assert _refused({"paths": ["/a%zz"]}) == {"paths[0]": "regex"}


def test_a_wildcard_host_on_the_left_or_right_is_accepted() -> None:
    assert _route({"hosts": ["*.example.com", "example.*"]})["hosts"] == [
        "*.example.com",
        "example.*",
    ]


def test_a_wildcard_in_the_middle_is_refused() -> None:
    assert _refused({"hosts": ["a.*.example.com"]}) == {"hosts[0]": "host"}


def test_two_wildcards_are_refused() -> None:
    assert _reason({"hosts": ["*.example.*"]}) == (
        "invalid wildcard: must have at most one wildcard"
    )


def test_a_host_with_a_port_is_accepted_as_kong_does() -> None:
    assert _route({"hosts": ["example.com:8000"]})["hosts"] == ["example.com:8000"]


def test_an_invalid_hostname_is_refused() -> None:
    assert _refused({"hosts": ["exa mple.com"]}) == {"hosts[0]": "host"}


def test_methods_must_be_uppercase() -> None:
    assert _refused({"methods": ["get"]}) == {"methods[0]": "match"}


def test_headers_map_names_to_lists_of_values() -> None:
    route = _route({"headers": {"x-version": ["1", "2"]}})
    assert route["headers"] == {"x-version": ["1", "2"]}


def test_the_host_header_is_refused_in_headers() -> None:
    assert _refused({"headers": {"Host": ["example.com"]}}) == {
        "headers.Host": "header_name"
    }


def test_a_header_needs_at_least_one_value() -> None:
    assert _refused({"headers": {"x-a": []}}) == {"headers.x-a": "len_min"}


def test_a_protocol_other_than_http_is_refused() -> None:
    assert _refused({"paths": ["/"], "protocols": ["grpc"]}) == {
        "protocols[0]": "one_of"
    }


def test_https_redirect_status_code_must_be_a_redirect_or_426() -> None:
    assert _refused({"paths": ["/"], "https_redirect_status_code": 303}) == {
        "https_redirect_status_code": "one_of"
    }


def test_path_handling_is_v0_or_v1() -> None:
    assert _refused({"paths": ["/"], "path_handling": "v2"}) == {
        "path_handling": "one_of"
    }


def test_snis_need_the_https_protocol() -> None:
    body = {"snis": ["example.com"], "protocols": ["http"], "paths": ["/"]}
    assert _refused(body) == {"snis": "conditional"}


def test_stream_sources_are_refused_as_unsupported() -> None:
    assert _refused({"paths": ["/"], "sources": [{"ip": "10.0.0.1"}]}) == {
        "sources": "unsupported"
    }


def test_a_service_given_by_id_is_normalised() -> None:
    route = _route({"paths": ["/"], "service": {"id": SERVICE_ID}})
    assert route["service"] == {"id": SERVICE_ID}


def test_a_service_given_by_name_is_resolved_to_its_id() -> None:
    route = _route({"paths": ["/"], "service": {"name": "svc"}})
    assert route["service"] == {"id": SERVICE_ID}


def test_a_service_given_as_a_bare_id_is_accepted() -> None:
    assert _route({"paths": ["/"], "service": SERVICE_ID})["service"] == {
        "id": SERVICE_ID
    }


def test_an_unknown_service_is_refused_naming_the_field() -> None:
    body = {"paths": ["/"], "service": {"id": "0f0c0a0e-6d1c-4a47-9d0e-6c2c1f0f0a01"}}
    assert _refused(body) == {"service": "foreign_key"}


def test_a_service_reference_with_another_key_is_refused() -> None:
    assert _refused({"paths": ["/"], "service": {"host": "x"}}) == {"service": "type"}


def test_an_update_can_detach_the_service() -> None:
    existing = _route({"paths": ["/"], "service": {"id": SERVICE_ID}})
    assert _route({"service": None}, existing=existing)["service"] is None


def test_a_path_with_dot_segments_is_refused_with_its_normal_form() -> None:
    assert _reason({"paths": ["/a/./b/../c"]}) == (
        "non-normalized path, consider use '/a/c' instead"
    )


def test_a_path_with_an_encoded_unreserved_character_is_refused() -> None:
    assert _refused({"paths": ["/%61bc"]}) == {"paths[0]": "regex"}


def test_normalize_path_uppercases_escapes_and_decodes_unreserved_ones() -> None:
    assert normalize_path("/a%2fb/%7Euser/x/../y") == "/a%2Fb/~user/y"


def test_normalize_path_keeps_a_trailing_slash() -> None:
    assert normalize_path("/a/b/") == "/a/b/"
    assert normalize_path("/a/b/..") == "/a/"
