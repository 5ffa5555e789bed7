"""Round trips and refusals of the cluster wire messages."""

from __future__ import annotations

import zlib

import orjson
import pytest

from shared.delta import apply_delta, diff
from shared.errors import ProtocolError
from shared.messages import (
    PROTOCOL_VERSION,
    Applied,
    ApplyError,
    ConfigMessage,
    DeltaMessage,
    Hello,
    Resync,
    Telemetry,
    decode,
    encode_config,
    json_pieces,
    load_config_json,
)
from shared.snapshot import Snapshot, build_config, make_snapshot

HASH = "a" * 32


def _service() -> dict[str, object]:
    return {
        "id": "7c0f1b1e-6d1c-4a47-9d0e-6c2c1f0f0a01",
        "name": "mock",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 8080,
        "enabled": True,
    }


def _snapshot(version: int = 3) -> Snapshot:
    return make_snapshot("group-1", version, build_config({"services": [_service()]}))


def _hello(**changes: object) -> Hello:
    fields: dict[str, object] = {
        "node_id": "0b1c5d0e-94a5-4a3e-8f8f-0d6a3c1f9e11",
        "hostname": "dp-1",
        "portico_version": "0.1.0",
        "plugins": ("basic-auth",),
        "config_version": 2,
        "config_hash": HASH,
        "labels": {"env": "test"},
    }
    fields.update(changes)
    return Hello(**fields)  # type: ignore[arg-type]


def test_hello_round_trips() -> None:
    hello = _hello()
    assert Hello.parse(hello.serialize()) == hello
    assert decode(hello.serialize()) == hello


def test_hello_of_a_node_without_config_round_trips() -> None:
    hello = _hello(config_version=None, config_hash=None, labels={})
    assert decode(hello.serialize()) == hello


def test_hello_with_a_version_but_no_hash_is_refused() -> None:
    with pytest.raises(ProtocolError, match="go together"):
        decode(_hello(config_hash=None).serialize())


def test_hello_with_a_malformed_node_id_is_refused() -> None:
    with pytest.raises(ProtocolError, match="node_id"):
        decode(_hello(node_id="../etc").serialize())


def test_config_message_round_trips_to_the_same_snapshot() -> None:
    snapshot = _snapshot()
    message = decode(encode_config(snapshot))
    assert isinstance(message, ConfigMessage)
    assert (message.group_id, message.version, message.hash) == (
        "group-1",
        3,
        snapshot.hash,
    )
    assert message.to_snapshot() == snapshot
    assert ConfigMessage.parse(message.serialize()) == message


def test_config_payload_is_compressed() -> None:
    services = [
        dict(_service(), id=f"{i:08d}-0000-4000-8000-000000000000", name=f"s{i}")
        for i in range(200)
    ]
    snapshot = make_snapshot("g", 1, build_config({"services": services}))
    frame = encode_config(snapshot)
    assert len(frame) < len(orjson.dumps(dict(snapshot.config))) / 4


def test_a_config_encoded_in_pieces_decodes_to_the_same_snapshot() -> None:
    services = [
        dict(_service(), id=f"{i:08d}-0000-4000-8000-000000000000", name=f"s{i}")
        for i in range(150)
    ]
    snapshot = make_snapshot("g", 4, build_config({"services": services}))
    decoded = decode(encode_config(snapshot, level=1))
    assert isinstance(decoded, ConfigMessage)
    assert decoded.to_snapshot() == snapshot


@pytest.mark.parametrize(
    "config",
    [{}, {"routes": []}, {"_format_version": "3.0", "routes": list(range(130))}],
)
def test_json_pieces_are_read_back_a_line_at_a_time(config: dict[str, object]) -> None:
    body = b"".join(json_pieces(config, step=64))
    assert orjson.loads(body) == config  # one JSON document for any reader
    assert load_config_json(body) == config


@pytest.mark.parametrize(
    "body",
    [
        b'{\n"a":[\n1\n2\n]\n}',  # no comma between pieces
        b'{\n"a":[\n,1\n]\n}',  # a comma before the first
        b'{\n"a":1\n"b":2\n}',  # no comma between members
        b'{\n"a":[\n1\n}',  # the list never closed
        b"{\n1:[\n]\n}",  # a name that is not a string
    ],
)
def test_a_broken_body_in_lines_is_not_json(body: bytes) -> None:
    with pytest.raises(ValueError):
        load_config_json(body)


def test_config_whose_payload_does_not_match_its_hash_is_refused() -> None:
    message = ConfigMessage.from_snapshot(_snapshot())
    forged = ConfigMessage(
        message.group_id, message.version, HASH, message.payload, message.size
    )
    with pytest.raises(ProtocolError, match="hash"):
        decode(forged.serialize()).to_snapshot()  # type: ignore[union-attr]


def test_config_that_inflates_past_its_declared_size_is_refused() -> None:
    body = orjson.dumps({"services": []})
    message = ConfigMessage("g", 1, HASH, zlib.compress(body * 1000), len(body))
    with pytest.raises(ProtocolError, match="size"):
        message.to_snapshot()


def test_config_with_a_corrupt_payload_is_refused() -> None:
    message = ConfigMessage("g", 1, HASH, b"not zlib at all", 10)
    with pytest.raises(ProtocolError, match="inflate"):
        message.to_snapshot()


def test_applied_round_trips() -> None:
    applied = Applied(version=4, hash=HASH, applied_at=1_700_000_000.25)
    assert Applied.parse(applied.serialize()) == applied
    assert decode(applied.serialize()) == applied


def test_apply_error_round_trips() -> None:
    error = ApplyError(version=4, hash=HASH, what="compile", reason="bad regex")
    assert ApplyError.parse(error.serialize()) == error
    assert decode(error.serialize()) == error


def test_telemetry_round_trips() -> None:
    report = Telemetry("node-1", {"requests": 12, "responses_4xx": 3}, 1.5)
    assert Telemetry.parse(report.serialize()) == report
    assert decode(report.serialize()) == report


def test_negative_counters_are_refused() -> None:
    with pytest.raises(ProtocolError, match="counter"):
        decode(Telemetry("node-1", {"requests": -1}, 1.5).serialize())


def test_unknown_message_type_is_refused() -> None:
    frame = orjson.dumps({"v": PROTOCOL_VERSION, "type": "reconfigure"})
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode(frame)


def test_other_protocol_version_is_refused() -> None:
    frame = orjson.dumps({"v": 99, "type": "applied"})
    with pytest.raises(ProtocolError, match="protocol version"):
        decode(frame)


def test_frame_that_is_not_json_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        decode(b"\x00\x01garbage")


def test_text_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="text frames"):
        decode(_hello().serialize().decode())


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(_hello().serialize(), max_size=16)


def test_unknown_fields_are_refused() -> None:
    data = orjson.loads(Applied(1, HASH, 1.0).serialize())
    data["extra"] = True
    with pytest.raises(ProtocolError, match="unknown fields"):
        decode(orjson.dumps(data))


def test_missing_fields_are_refused() -> None:
    data = orjson.loads(Applied(1, HASH, 1.0).serialize())
    del data["hash"]
    with pytest.raises(ProtocolError, match="missing fields"):
        decode(orjson.dumps(data))


def test_boolean_version_is_refused() -> None:
    data = orjson.loads(Applied(1, HASH, 1.0).serialize())
    data["version"] = True
    with pytest.raises(ProtocolError, match="version"):
        decode(orjson.dumps(data))


def test_parse_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ProtocolError, match="expected a hello"):
        Hello.parse(Applied(1, HASH, 1.0).serialize())


def test_hello_with_capabilities_round_trips() -> None:
    hello = _hello(capabilities=("delta",))
    assert decode(hello.serialize()) == hello


def test_hello_without_capabilities_is_read_as_none() -> None:
    header = orjson.loads(_hello().serialize())
    del header["capabilities"]
    parsed = decode(orjson.dumps(header))
    assert isinstance(parsed, Hello) and parsed.capabilities == ()


def test_hello_with_malformed_capabilities_is_refused() -> None:
    header = orjson.loads(_hello().serialize())
    header["capabilities"] = "delta"
    with pytest.raises(ProtocolError, match="capabilities"):
        decode(orjson.dumps(header))


def _changed(version: int) -> Snapshot:
    service = dict(_service(), port=9000 + version)
    return make_snapshot("group-1", version, build_config({"services": [service]}))


def test_delta_message_round_trips_to_the_same_delta() -> None:
    base, target = _snapshot(3), _changed(5)
    delta = diff(base.config, target.config)
    message = DeltaMessage.from_delta(base.version, base.hash, target, delta)
    parsed = decode(message.serialize())
    assert isinstance(parsed, DeltaMessage)
    assert (parsed.base_version, parsed.base_hash) == (3, base.hash)
    assert (parsed.version, parsed.hash) == (5, target.hash)
    assert apply_delta(base.config, parsed.to_delta()) == target.config


def test_delta_message_whose_base_is_not_older_is_refused() -> None:
    target = _changed(5)
    delta = diff(_snapshot(3).config, target.config)
    message = DeltaMessage.from_delta(5, HASH, target, delta)
    with pytest.raises(ProtocolError, match="base_version must be older"):
        decode(message.serialize())


def test_delta_message_with_a_malformed_payload_is_refused() -> None:
    body = orjson.dumps({"lists": ["services"], "fields": {}, "upserts": {"acls": []}})
    message = DeltaMessage("group-1", 1, HASH, 2, HASH, zlib.compress(body), len(body))
    with pytest.raises(ProtocolError, match="must hold lists"):
        message.to_delta()
    body = orjson.dumps(
        {"lists": ["services"], "fields": {}, "upserts": {"acls": []}, "deletes": {}}
    )
    message = DeltaMessage("group-1", 1, HASH, 2, HASH, zlib.compress(body), len(body))
    with pytest.raises(ProtocolError, match="keyed by lists"):
        message.to_delta()


def test_resync_round_trips() -> None:
    message = Resync(4, HASH, "delta from version 2 cannot apply to version 3")
    assert decode(message.serialize()) == message
