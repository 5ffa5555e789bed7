"""Encode and decode the messages of the cluster channel (no I/O).

A data plane node and the control plane exchange binary WebSocket frames.
Every frame starts with a JSON header on one line; a config frame carries
the compressed configuration after that line::

    {"v":1,"type":"config","group_id":...,"version":7,"hash":...,"size":1234}\\n
    <zlib-compressed JSON of the snapshot's config>

The config's JSON has a line break after every few entities (see
:func:`json_pieces`): any JSON reader takes it whole, and a node reads it a
line at a time, so that decoding a large config in a thread does not keep
the proxy's event loop waiting for the GIL.

A delta frame carries, the same way, the changes from the version a node
runs to a newer one (see :mod:`shared.delta`)::

    {"v":1,"type":"delta","group_id":...,"base_version":5,"base_hash":...,
     "version":7,"hash":...,"size":321}\n
    <zlib-compressed orjson of {"lists", "fields", "upserts", "deletes"}>

The other frames are the header alone::

    hello     node → CP, first frame: who the node is and what it runs
    applied   node → CP: a config version now serves traffic
    error     node → CP: a config version could not be applied
    resync    node → CP: a delta did not apply; send the full config
    telemetry node → CP (telemetry endpoint): request counters

Keepalive is left to WebSocket pings. Anything malformed, unknown or larger
than allowed raises :exc:`~shared.errors.ProtocolError`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import orjson

from shared.delta import Delta
from shared.errors import ProtocolError
from shared.snapshot import Snapshot, make_snapshot

PROTOCOL_VERSION = 1
# The capability a node names in its hello to be sent deltas.
DELTA = "delta"
MAX_FRAME_SIZE = 16 * 1024 * 1024
# JSON compresses well, so a frame may inflate far past its own size; refuse
# configs larger than this so that a hostile frame cannot exhaust memory.
MAX_CONFIG_SIZE = 512 * 1024 * 1024

_HASH = re.compile(r"[0-9a-f]{32}")
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_TEXT = 1024


def _fail(type_name: str, reason: str) -> ProtocolError:
    return ProtocolError(f"invalid {type_name} message: {reason}")


def _check_hash(type_name: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise _fail(type_name, f"{name} must be 32 lowercase hex characters")


def _check_version(type_name: str, name: str, value: object) -> None:
    # bool is an int subclass; a version of True is still nonsense.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(type_name, f"{name} must be a non-negative integer")


def _check_text(type_name: str, name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(type_name, f"{name} must be a string of at most {limit} chars")


def _check_node_id(type_name: str, value: object) -> None:
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise _fail(type_name, "node_id must be 1-128 letters, digits or ._:-")


def _load_header(data: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header must be a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {header.get('v')!r}, "
            f"expected {PROTOCOL_VERSION}"
        )
    return header


def _fields(
    type_name: str,
    header: Mapping[str, Any],
    names: set[str],
    optional: frozenset[str] = frozenset(),
) -> None:
    unknown = set(header) - names - optional - {"v", "type"}
    if unknown:
        raise _fail(type_name, f"unknown fields {sorted(unknown)}")
    missing = names - set(header)
    if missing:
        raise _fail(type_name, f"missing fields {sorted(missing)}")


@dataclass(frozen=True)
class Hello:
    """Introduce a data plane node: the first frame it sends on connecting."""

    TYPE: ClassVar[str] = "hello"

    node_id: str
    hostname: str
    portico_version: str
    plugins: tuple[str, ...]
    config_version: int | None
    config_hash: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Optional protocol features the node supports, e.g. "delta"; a node
    # that sends none gets full configs only.
    capabilities: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise ProtocolError unless every field is well formed."""
        _check_node_id(self.TYPE, self.node_id)
        _check_text(self.TYPE, "hostname", self.hostname, 255)
        _check_text(self.TYPE, "portico_version", self.portico_version, 64)
        if not isinstance(self.plugins, tuple) or not all(
            isinstance(p, str) and 0 < len(p) <= 128 for p in self.plugins
        ):
            raise _fail(self.TYPE, "plugins must be a list of plugin names")
        if (self.config_version is None) != (self.config_hash is None):
            raise _fail(self.TYPE, "config_version and config_hash go together")
        if self.config_version is not None:
            _check_version(self.TYPE, "config_version", self.config_version)
            _check_hash(self.TYPE, "config_hash", self.config_hash)
        if not isinstance(self.labels, Mapping) or len(self.labels) > 64:
            raise _fail(self.TYPE, "labels must be an object of at most 64 entries")
        for key, value in self.labels.items():
            _check_text(self.TYPE, "label key", key, 63)
            _check_text(self.TYPE, "label value", value, 63)
        if (
            not isinstance(self.capabilities, tuple)
            or len(self.capabilities) > 32
            or not all(
                isinstance(c, str) and 0 < len(c) <= 64 for c in self.capabilities
            )
        ):
            raise _fail(self.TYPE, "capabilities must be a list of at most 32 names")

    def serialize(self) -> bytes:
        """Return the frame that carries this message."""
        return orjson.dumps(
            {
                "v": PROTOCOL_VERSION,
                "type": self.TYPE,
                "node_id": self.node_id,
                "hostname": self.hostname,
                "portico_version": self.portico_version,
                "plugins": list(self.plugins),
                "config_version": self.config_version,
                "config_hash": self.config_hash,
                "labels": dict(self.labels),
                "capabilities": list(self.capabilities),
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Decode and check a hello frame."""
        return cls._from_header(_expect(_load_header(data), cls.TYPE))

    @classmethod
    def _from_header(cls, header: Mapping[str, Any]) -> Self:
        _fields(cls.TYPE, header, _HELLO_FIELDS, frozenset({"capabilities"}))
        plugins = header["plugins"]
        labels = header["labels"]
        capabilities = header.get("capabilities", [])
        if not isinstance(plugins, list):
            raise _fail(cls.TYPE, "plugins must be a list of plugin names")
        if not isinstance(labels, dict):
            raise _fail(cls.TYPE, "labels must be an object")
        if not isinstance(capabilities, list):
            raise _fail(cls.TYPE, "capabilities must be a list of at most 32 names")
        message = cls(
            node_id=header["node_id"],
            hostname=header["hostname"],
            portico_version=header["portico_version"],
            plugins=tuple(plugins),
            config_version=header["config_version"],
            config_hash=header["config_hash"],
            labels=labels,
            capabilities=tuple(capabilities),
        )
        message.check()
        return message


_HELLO_FIELDS = {
    "node_id",
    "hostname",
    "portico_version",
    "plugins",
    "config_version",
    "config_hash",
    "labels",
}


@dataclass(frozen=True)
class ConfigMessage:
    """Carry one version of a runtime group's config, compressed."""

    TYPE: ClassVar[str] = "config"

    group_id: str
    version: int
    hash: str
    payload: bytes
    size: int

    def check(self) -> None:
        """Raise ProtocolError unless the header fields are well formed."""
        _check_text(self.TYPE, "group_id", self.group_id, 128)
        _check_version(self.TYPE, "version", self.version)
        _check_hash(self.TYPE, "hash", self.hash)
        _check_version(self.TYPE, "size", self.size)
        if self.size > MAX_CONFIG_SIZE:
            raise _fail(self.TYPE, f"config of {self.size} bytes is too large")

    def serialize(self) -> bytes:
        """Return the frame that carries this message."""
        header = {
            "v": PROTOCOL_VERSION,
            "type": self.TYPE,
            "group_id": self.group_id,
            "version": self.version,
            "hash": self.hash,
            "size": self.size,
        }
        return orjson.dumps(header) + b"\n" + self.payload

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, level: int = 6) -> Self:
        """Compress a snapshot's config into a message.

        The config is encoded and compressed a few entities at a time (see
        :func:`json_pieces`), so that a thread doing it lets the GIL go
        between pieces: orjson holds it while it encodes, 40 ms for ten
        thousand routes and consumers at once. `level` trades the frame's
        size for the compressor's time (1 is four times as fast as 6).
        """
        compressor = zlib.compressobj(level)
        compressed: list[bytes] = []
        size = 0
        for piece in json_pieces(snapshot.config):
            size += len(piece)
            compressed.append(compressor.compress(piece))
        compressed.append(compressor.flush())
        return cls(
            group_id=snapshot.group_id,
            version=snapshot.version,
            hash=snapshot.hash,
            payload=b"".join(compressed),
            size=size,
        )

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Decode a config frame's header; the payload stays compressed."""
        head, sep, payload = data.partition(b"\n")
        if not sep:
            raise _fail(cls.TYPE, "no payload after the header")
        return cls._from_header(_expect(_load_header(head), cls.TYPE), payload)

    @classmethod
    def _from_header(cls, header: Mapping[str, Any], payload: bytes) -> Self:
        _fields(cls.TYPE, header, {"group_id", "version", "hash", "size"})
        message = cls(
            group_id=header["group_id"],
            version=header["version"],
            hash=header["hash"],
            payload=payload,
            size=header["size"],
        )
        message.check()
        return message

    def to_snapshot(self) -> Snapshot:
        """Inflate the payload and return the snapshot, its hash verified."""
        config = _inflate(self.TYPE, self.payload, self.size)
        snapshot = make_snapshot(self.group_id, self.version, config)
        if snapshot.hash != self.hash:
            raise _fail(self.TYPE, "payload does not match its hash")
        return snapshot


def _inflate(type_name: str, payload: bytes, size: int) -> dict[str, Any]:
    """Inflate a payload of exactly `size` bytes of JSON holding an object."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(payload, size + 1)
    except zlib.error as exc:
        raise _fail(type_name, f"payload does not inflate: {exc}") from None
    if len(body) != size or not inflater.eof:
        raise _fail(type_name, "payload size differs from the header's")
    try:
        value = load_config_json(body)
    except ValueError as exc:  # orjson.JSONDecodeError is one
        raise _fail(type_name, f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail(type_name, "payload must be a JSON object")
    return value


def encode_config(snapshot: Snapshot, level: int = 6) -> bytes:
    """Return the config frame of a snapshot; callers cache it per version."""
    return ConfigMessage.from_snapshot(snapshot, level).serialize()


def json_pieces(config: Mapping[str, Any], step: int = 64) -> Iterator[bytes]:
    """Yield the JSON of `config`, an object of lists, `step` entities at a time.

    Joined, the pieces are one JSON document with a line break after each
    piece (whitespace to any JSON reader); :func:`load_config_json` reads
    it back a line at a time.
    """
    yield b"{\n"
    separator = b""
    for key, value in config.items():
        head = separator + orjson.dumps(key) + b":"
        separator = b","
        if not isinstance(value, list) or not value:
            yield head + orjson.dumps(value) + b"\n"
            continue
        yield head + b"[\n"
        for start in range(0, len(value), step):
            encoded = orjson.dumps(value[start : start + step])
            # "[a,b]" without its brackets, after a comma but for the first.
            yield (b"," if start else b"") + encoded[1:-1] + b"\n"
        yield b"]\n"
    yield b"}"


def load_config_json(body: bytes) -> Any:
    """Return the JSON value of a config body; ValueError if it is not JSON.

    A body made by :func:`json_pieces` is read a line at a time, so that a
    thread reading it lets the GIL go between lines (orjson holds it while
    it reads, 30 ms for ten thousand routes and consumers at once). Any
    other JSON is read whole.
    """
    if not body.startswith(b"{\n") or not body.endswith(b"\n}"):
        return orjson.loads(body)
    config: dict[str, Any] = {}
    entities: list[Any] | None = None  # the list being read, if any
    for position, line in enumerate(_lines(body, 2, len(body) - 2)):
        if entities is not None:
            if line == b"]":
                entities = None
                continue
            # A comma before every piece but the first, as in the whole.
            if bool(entities) != line.startswith(b","):
                raise ValueError("misplaced comma between entities")
            entities += orjson.loads(b"[" + line.removeprefix(b",") + b"]")
            continue
        if bool(position) != line.startswith(b","):
            raise ValueError("misplaced comma between members")
        member = line.removeprefix(b",")
        if member.endswith(b":["):
            key = orjson.loads(member[:-2])
            if not isinstance(key, str):
                raise ValueError("a member's name is not a string")
            entities = config[key] = []
        else:
            config.update(orjson.loads(b"{" + member + b"}"))
    if entities is not None:
        raise ValueError("a list of entities is not closed")
    return config


def _lines(body: bytes, start: int, end: int) -> Iterator[bytes]:
    """Yield the lines of `body[start:end]`, one copy at a time.

    Splitting the whole at once would copy megabytes while holding the GIL.
    """
    while start <= end:
        stop = body.find(b"\n", start, end)
        if stop < 0:
            stop = end
        yield body[start:stop]
        start = stop + 1


@dataclass(frozen=True)
class DeltaMessage:
    """Carry the changes from one version of a group's config to a newer one."""

    TYPE: ClassVar[str] = "delta"

    group_id: str
    base_version: int
    base_hash: str
    version: int
    hash: str
    payload: bytes
    size: int

    def check(self) -> None:
        """Raise ProtocolError unless the header fields are well formed."""
        _check_text(self.TYPE, "group_id", self.group_id, 128)
        _check_version(self.TYPE, "base_version", self.base_version)
        _check_hash(self.TYPE, "base_hash", self.base_hash)
        _check_version(self.TYPE, "version", self.version)
        _check_hash(self.TYPE, "hash", self.hash)
        if self.base_version >= self.version:
            raise _fail(self.TYPE, "base_version must be older than version")
        _check_version(self.TYPE, "size", self.size)
        if self.size > MAX_CONFIG_SIZE:
            raise _fail(self.TYPE, f"delta of {self.size} bytes is too large")

    def serialize(self) -> bytes:
        """Return the frame that carries this message."""
        header = {
            "v": PROTOCOL_VERSION,
            "type": self.TYPE,
            "group_id": self.group_id,
            "base_version": self.base_version,
            "base_hash": self.base_hash,
            "version": self.version,
            "hash": self.hash,
            "size": self.size,
        }
        return orjson.dumps(header) + b"\n" + self.payload

    @classmethod
    def from_delta(
        cls, base_version: int, base_hash: str, target: Snapshot, delta: Delta
    ) -> Self:
        """Compress the delta from a base version to `target` into a message."""
        body = orjson.dumps(
            {
                "lists": list(delta.lists),
                "fields": dict(delta.fields),
                "upserts": {k: list(v) for k, v in delta.upserts.items()},
                "deletes": {k: list(v) for k, v in delta.deletes.items()},
            }
        )
        return cls(
            group_id=target.group_id,
            base_version=base_version,
            base_hash=base_hash,
            version=target.version,
            hash=target.hash,
            payload=zlib.compress(body, 6),
            size=len(body),
        )

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Decode a delta frame's header; the payload stays compressed."""
        head, sep, payload = data.partition(b"\n")
        if not sep:
            raise _fail(cls.TYPE, "no payload after the header")
        return cls._from_header(_expect(_load_header(head), cls.TYPE), payload)

    @classmethod
    def _from_header(cls, header: Mapping[str, Any], payload: bytes) -> Self:
        _fields(cls.TYPE, header, _DELTA_FIELDS)
        message = cls(
            group_id=header["group_id"],
            base_version=header["base_version"],
            base_hash=header["base_hash"],
            version=header["version"],
            hash=header["hash"],
            payload=payload,
            size=header["size"],
        )
        message.check()
        return message

    def to_delta(self) -> Delta:
        """Inflate the payload and return the delta, its shape checked."""
        body = _inflate(self.TYPE, self.payload, self.size)
        if set(body) != {"lists", "fields", "upserts", "deletes"}:
            raise _fail(self.TYPE, "payload must hold lists, fields, upserts, deletes")
        lists, fields = body["lists"], body["fields"]
        upserts, deletes = body["upserts"], body["deletes"]
        if not isinstance(lists, list) or not all(isinstance(k, str) for k in lists):
            raise _fail(self.TYPE, "lists must be a list of names")
        if not isinstance(fields, dict) or set(fields) & set(lists):
            raise _fail(self.TYPE, "fields must be an object apart from the lists")
        if not isinstance(upserts, dict) or not set(upserts) <= set(lists):
            raise _fail(self.TYPE, "upserts must be an object keyed by lists")
        if not isinstance(deletes, dict) or not set(deletes) <= set(lists):
            raise _fail(self.TYPE, "deletes must be an object keyed by lists")
        for entities in upserts.values():
            if not isinstance(entities, list) or not all(
                isinstance(e, dict) and isinstance(e.get("id"), str) for e in entities
            ):
                raise _fail(self.TYPE, "upserts must be lists of entities with ids")
        for ids in deletes.values():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise _fail(self.TYPE, "deletes must be lists of ids")
        return Delta(tuple(lists), fields, upserts, deletes)


_DELTA_FIELDS = {
    "group_id",
    "base_version",
    "base_hash",
    "version",
    "hash",
    "size",
}


class _HeaderOnly:
    """Serialize, parse and check a message that is a header and nothing else.

    Subclasses are frozen dataclasses whose fields are the header's fields,
    in order, and define `TYPE` and `check()`.
    """

    TYPE: ClassVar[str]

    def check(self) -> None:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Return the frame that carries this message."""
        header: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": self.TYPE}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            header[name] = dict(value) if isinstance(value, Mapping) else value
        return orjson.dumps(header)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Decode and check a frame of this type."""
        return cls._from_header(_expect(_load_header(data), cls.TYPE))

    @classmethod
    def _from_header(cls, header: Mapping[str, Any]) -> Self:
        names = _field_names(cls)
        _fields(cls.TYPE, header, set(names))
        message = cls(*(header[name] for name in names))
        message.check()
        return message


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Applied(_HeaderOnly):
    """Report that a config version now serves traffic on a node."""

    TYPE: ClassVar[str] = "applied"

    version: int
    hash: str
    applied_at: float

    def check(self) -> None:
        """Raise ProtocolError unless every field is well formed."""
        _check_version(self.TYPE, "version", self.version)
        _check_hash(self.TYPE, "hash", self.hash)
        if not isinstance(self.applied_at, int | float) or self.applied_at < 0:
            raise _fail(self.TYPE, "applied_at must be epoch seconds")


@dataclass(frozen=True)
class ApplyError(_HeaderOnly):
    """Report that a node could not apply a config version, and why."""

    TYPE: ClassVar[str] = "error"

    version: int
    hash: str
    what: str
    reason: str

    def check(self) -> None:
        """Raise ProtocolError unless every field is well formed."""
        _check_version(self.TYPE, "version", self.version)
        _check_hash(self.TYPE, "hash", self.hash)
        _check_text(self.TYPE, "what", self.what, 128)
        _check_text(self.TYPE, "reason", self.reason, _MAX_TEXT)


@dataclass(frozen=True)
class Resync(_HeaderOnly):
    """Ask for the full config: the delta to `version` did not apply, and why."""

    TYPE: ClassVar[str] = "resync"

    version: int
    hash: str
    reason: str

    def check(self) -> None:
        """Raise ProtocolError unless every field is well formed."""
        _check_version(self.TYPE, "version", self.version)
        _check_hash(self.TYPE, "hash", self.hash)
        _check_text(self.TYPE, "reason", self.reason, _MAX_TEXT)


@dataclass(frozen=True)
class Telemetry(_HeaderOnly):
    """Report a node's request counters since it started."""

    TYPE: ClassVar[str] = "telemetry"

    node_id: str
    counters: Mapping[str, int]
    sent_at: float

    def check(self) -> None:
        """Raise ProtocolError unless every field is well formed."""
        _check_node_id(self.TYPE, self.node_id)
        if not isinstance(self.counters, Mapping) or len(self.counters) > 256:
            raise _fail(self.TYPE, "counters must be an object of at most 256")
        for name, value in self.counters.items():
            _check_text(self.TYPE, "counter name", name, 128)
            _check_version(self.TYPE, f"counter {name}", value)
        if not isinstance(self.sent_at, int | float) or self.sent_at < 0:
            raise _fail(self.TYPE, "sent_at must be epoch seconds")


Message = (
    Hello | ConfigMessage | DeltaMessage | Applied | ApplyError | Resync | Telemetry
)


def _expect(header: dict[str, Any], type_name: str) -> dict[str, Any]:
    if header.get("type") != type_name:
        raise ProtocolError(
            f"expected a {type_name} message, got {header.get('type')!r}"
        )
    return header


def decode(frame: bytes | str, *, max_size: int = MAX_FRAME_SIZE) -> Message:
    """Parse any frame into its message; ProtocolError if it is not one."""
    if isinstance(frame, str):
        raise ProtocolError("text frames are not part of the protocol")
    if len(frame) > max_size:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {max_size}")
    head, sep, payload = frame.partition(b"\n")
    header = _load_header(head)
    kind = header.get("type")
    if kind == ConfigMessage.TYPE:
        if not sep:
            raise _fail(ConfigMessage.TYPE, "no payload after the header")
        return ConfigMessage._from_header(header, payload)
    if kind == DeltaMessage.TYPE:
        if not sep:
            raise _fail(DeltaMessage.TYPE, "no payload after the header")
        return DeltaMessage._from_header(header, payload)
    if sep:
        raise ProtocolError(f"unexpected payload after a {kind!r} header")
    if kind == Hello.TYPE:
        return Hello._from_header(header)
    if kind == Applied.TYPE:
        return Applied._from_header(header)
    if kind == ApplyError.TYPE:
        return ApplyError._from_header(header)
    if kind == Resync.TYPE:
        return Resync._from_header(header)
    if kind == Telemetry.TYPE:
        return Telemetry._from_header(header)
    raise ProtocolError(f"unknown message type {kind!r}")
