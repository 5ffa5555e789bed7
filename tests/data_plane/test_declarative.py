"""Declarative files load into snapshots in the config shape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_plane.declarative import DeclarativeLoader
from shared.credentials import is_password_hash, verify_password
from shared.errors import ValidationError

YAML = """
_format_version: "3.0"
services:
  - name: echo
    url: http://127.0.0.1:8080/base
    routes:
      - name: mock
        paths: [/mock]
        plugins:
          - name: basic-auth
consumers:
  - username: alice
    basicauth_credentials:
      - username: alice
        password: secret
"""


def _load(tmp_path: Path, text: str, name: str = "kong.yaml") -> DeclarativeLoader:
    path = tmp_path / name
    path.write_text(text)
    return DeclarativeLoader(path)


def test_nested_entities_are_flattened_with_foreign_keys(tmp_path: Path) -> None:
    config = _load(tmp_path, YAML).load().config
    (service,) = config["services"]
    (route,) = config["routes"]
    (plugin,) = config["plugins"]
    (credential,) = config["basicauth_credentials"]
    assert route["service"] == {"id": service["id"]}
    assert plugin["route"] == {"id": route["id"]}
    assert credential["consumer"] == {"id": config["consumers"][0]["id"]}


def test_the_service_url_is_expanded_and_defaults_filled(tmp_path: Path) -> None:
    config = _load(tmp_path, YAML).load().config
    service = config["services"][0]
    assert (service["host"], service["port"], service["path"]) == (
        "127.0.0.1",
        8080,
        "/base",
    )
    assert config["routes"][0]["strip_path"] is True


def test_clear_text_passwords_are_hashed(tmp_path: Path) -> None:
    credential = _load(tmp_path, YAML).load().config["basicauth_credentials"][0]
    assert is_password_hash(credential["password"])
    assert verify_password("secret", credential["password"])


def test_reloading_an_unchanged_file_keeps_hash_and_version(tmp_path: Path) -> None:
    loader = _load(tmp_path, YAML)
    first, second = loader.load(), loader.load()
    assert (first.hash, first.version) == (second.hash, second.version)


def test_a_changed_file_gets_the_next_version(tmp_path: Path) -> None:
    loader = _load(tmp_path, YAML)
    first = loader.load()
    loader.path.write_text(YAML.replace("/mock", "/other"))
    second = loader.load()
    assert second.version == first.version + 1
    assert second.hash != first.hash


def test_a_reload_keeps_the_entities_it_did_not_change(tmp_path: Path) -> None:
    loader = _load(tmp_path, YAML)
    before = loader.load().config
    path = tmp_path / "kong.yaml"
    path.write_text(YAML.replace("paths: [/mock]", "paths: [/other]"))
    os.utime(path, (before["routes"][0]["created_at"] + 60,) * 2)
    after = loader.load().config
    # Same entity, same object and first timestamps, though the file is newer.
    assert after["services"][0] is before["services"][0]
    assert after["consumers"][0] is before["consumers"][0]
    assert after["basicauth_credentials"][0] is before["basicauth_credentials"][0]
    assert after["routes"][0] is not before["routes"][0]
    assert after["routes"][0]["paths"] == ["/other"]
    stamp = before["routes"][0]["created_at"]
    assert after["routes"][0]["created_at"] == stamp
    assert after["routes"][0]["updated_at"] == stamp + 60


def test_a_json_file_is_read(tmp_path: Path) -> None:
    loader = _load(tmp_path, '{"services": [{"name": "a", "host": "h"}]}', "k.json")
    assert loader.load().config["services"][0]["name"] == "a"


def test_a_foreign_key_by_name_is_resolved(tmp_path: Path) -> None:
    text = "services: [{name: a, host: h}]\nroutes: [{name: r, paths: [/], service: a}]"
    config = _load(tmp_path, text).load().config
    assert config["routes"][0]["service"] == {"id": config["services"][0]["id"]}


def test_an_unknown_service_name_is_refused(tmp_path: Path) -> None:
    text = "routes: [{name: r, paths: [/], service: nope}]"
    with pytest.raises(ValidationError, match="service"):
        _load(tmp_path, text).load()


def test_an_unknown_entity_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown"):
        _load(tmp_path, "upstreams: []").load()


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not valid"):
        _load(tmp_path, "services: [unclosed").load()


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        DeclarativeLoader(tmp_path / "absent.yaml").load()
