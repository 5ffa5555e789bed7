"""Config rules of the smaller bundled plugins."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ValidationError
from shared.schema.fields import Checker
from shared.schema.plugins import PLUGIN_SCHEMAS


def _config(name: str, value: dict[str, Any]) -> dict[str, Any]:
    checker = Checker()
    config = checker.check(PLUGIN_SCHEMAS[name].config, value, "config")
    if checker.errors:
        raise ValidationError("schema violation", checker.errors)
    assert isinstance(config, dict)
    return config


def _refused(name: str, value: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        _config(name, value)
    return {p.field: p.rule for p in caught.value.invalid_parameters}


def test_key_auth_defaults_follow_kong() -> None:
    assert _config("key-auth", {}) == {
        "key_names": ["apikey"],
        "hide_credentials": False,
        "anonymous": None,
        "key_in_header": True,
        "key_in_query": True,
        "key_in_body": False,
        "run_on_preflight": True,
        "realm": None,
    }


def test_key_auth_key_names_must_be_header_names() -> None:
    assert _refused("key-auth", {"key_names": ["a b"]}) == {
        "config.key_names[0]": "header_name"
    }


def test_acl_needs_exactly_one_of_allow_and_deny() -> None:
    assert _refused("acl", {}) == {"config.allow": "only_one_of"}
    assert _refused("acl", {"allow": ["a"], "deny": ["b"]}) == {
        "config.allow": "only_one_of"
    }
    assert _config("acl", {"allow": ["admins"]})["hide_groups_header"] is False


def test_cors_defaults_allow_every_method() -> None:
    config = _config("cors", {})
    assert config["methods"] == [
        "GET",
        "HEAD",
        "PUT",
        "PATCH",
        "POST",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "CONNECT",
    ]
    assert config["credentials"] is False


def test_cors_origins_must_be_a_star_or_a_regex() -> None:
    assert _config("cors", {"origins": ["*", "https://.*\\.example\\.com"]})
    assert _refused("cors", {"origins": ["(["]}) == {"config.origins[0]": "regex"}


def test_cors_refuses_an_unknown_method() -> None:
    assert _refused("cors", {"methods": ["FETCH"]}) == {"config.methods[0]": "one_of"}


def test_ip_restriction_needs_allow_or_deny() -> None:
    assert _refused("ip-restriction", {}) == {"config.allow": "at_least_one_of"}


def test_ip_restriction_accepts_ips_and_cidrs() -> None:
    config = _config("ip-restriction", {"allow": ["10.0.0.1", "192.168.0.0/16", "::1"]})
    assert len(config["allow"]) == 3


def test_ip_restriction_refuses_a_bad_address() -> None:
    assert _refused("ip-restriction", {"deny": ["10.0.0.300"]}) == {
        "config.deny[0]": "ip_or_cidr"
    }


def test_request_transformer_defaults_to_empty_lists() -> None:
    config = _config("request-transformer", {})
    assert config["add"] == {"body": [], "headers": [], "querystring": []}
    assert config["replace"]["uri"] is None
    assert config["http_method"] is None


def test_request_transformer_needs_name_value_pairs() -> None:
    assert _refused("request-transformer", {"add": {"headers": ["x-a"]}}) == {
        "config.add.headers[0]": "pair"
    }
    assert _config("request-transformer", {"add": {"headers": ["x-a:1"]}})


def test_request_transformer_http_method_is_uppercase() -> None:
    assert _refused("request-transformer", {"http_method": "post"}) == {
        "config.http_method": "match"
    }


def test_request_transformer_accepts_templates_in_values() -> None:
    assert _config(
        "request-transformer",
        {
            "add": {
                "headers": ['X-A:id $(headers["x-id"] or "none")'],
                "querystring": ["q:$(query_params.q)"],
                "body": ["b:$(uri_captures[1])"],
            },
            "replace": {"uri": "/v2/$(uri_captures.user)"},
        },
    )


def test_request_transformer_refuses_a_template_it_cannot_render() -> None:
    config = {
        "add": {"body": ["a:$(os.getenv('HOME'))"]},
        "append": {"querystring": ["q:$(headers.a"]},  # unclosed: text
        "replace": {"headers": ['X-A:$(headers.a .. "x")']},
        "rename": {"body": ["b:$()"]},
    }
    assert _refused("request-transformer", config) == {
        "config.add.body[0]": "template",
        "config.replace.headers[0]": "template",
        "config.rename.body[0]": "template",
    }


def test_request_transformer_body_and_query_values_are_required() -> None:
    assert _refused("request-transformer", {"add": {"querystring": ["q:"]}}) == {
        "config.add.querystring[0]": "pair"
    }


def test_request_transformer_renames_headers_to_header_names() -> None:
    assert _refused("request-transformer", {"rename": {"headers": ["a:b c"]}}) == {
        "config.rename.headers[0]": "header_name"
    }


def test_request_transformer_uri_is_a_path_or_a_template() -> None:
    assert _refused("request-transformer", {"replace": {"uri": "v2"}}) == {
        "config.replace.uri": "template"
    }
    assert _refused("request-transformer", {"replace": {"uri": "/$(nope)"}}) == {
        "config.replace.uri": "template"
    }
    assert _config("request-transformer", {"replace": {"uri": "$(headers.p)"}})


def test_response_transformer_json_types_are_checked() -> None:
    value = {"add": {"json": ["a:1"], "json_types": ["integer"]}}
    assert _refused("response-transformer", value) == {
        "config.add.json_types[0]": "one_of"
    }


def test_correlation_id_defaults_follow_kong() -> None:
    assert _config("correlation-id", {}) == {
        "header_name": "Kong-Request-ID",
        "generator": "uuid#counter",
        "echo_downstream": False,
    }


def test_request_size_limiting_defaults_follow_kong() -> None:
    assert _config("request-size-limiting", {}) == {
        "allowed_payload_size": 128,
        "size_unit": "megabytes",
        "require_content_length": False,
    }


def test_request_termination_defaults_to_503() -> None:
    assert _config("request-termination", {})["status_code"] == 503


def test_request_termination_refuses_message_with_body() -> None:
    value = {"message": "no", "body": "{}", "content_type": "application/json"}
    assert _refused("request-termination", value) == {"config.message": "conflict"}


def test_request_termination_content_type_needs_a_body() -> None:
    value = {"content_type": "text/plain"}
    assert _refused("request-termination", value) == {"config.content_type": "conflict"}


def test_request_termination_status_code_is_an_http_status() -> None:
    assert _refused("request-termination", {"status_code": 600}) == {
        "config.status_code": "between"
    }


def test_prometheus_metrics_are_off_by_default() -> None:
    assert not any(_config("prometheus", {}).values())


def test_basic_auth_realm_cannot_be_null() -> None:
    assert _refused("basic-auth", {"realm": None}) == {"config.realm": "required"}


def test_ip_restriction_status_is_an_http_status() -> None:
    assert _refused("ip-restriction", {"deny": ["10.0.0.1"], "status": 1000}) == {
        "config.status": "between"
    }


def test_correlation_id_refuses_an_unknown_generator() -> None:
    assert _refused("correlation-id", {"generator": "random"}) == {
        "config.generator": "one_of"
    }


def test_correlation_id_header_name_must_be_a_header_name() -> None:
    assert _refused("correlation-id", {"header_name": "a b"}) == {
        "config.header_name": "header_name"
    }


def test_request_size_limiting_refuses_an_unknown_unit() -> None:
    assert _refused("request-size-limiting", {"size_unit": "gigabytes"}) == {
        "config.size_unit": "one_of"
    }


def test_request_size_limiting_size_is_an_integer() -> None:
    assert _refused("request-size-limiting", {"allowed_payload_size": "big"}) == {
        "config.allowed_payload_size": "type"
    }


def test_key_auth_refuses_an_empty_key_names_list() -> None:
    assert _refused("key-auth", {"key_names": []}) == {"config.key_names": "len_min"}


def test_acl_groups_must_be_strings() -> None:
    assert _refused("acl", {"allow": [1]}) == {"config.allow[0]": "type"}


def test_request_termination_trigger_must_be_a_header_name() -> None:
    assert _refused("request-termination", {"trigger": "a b"}) == {
        "config.trigger": "header_name"
    }
