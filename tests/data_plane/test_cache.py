"""The last applied config is kept on disk, atomically, and refused when unfit."""

from __future__ import annotations

import logging
import stat
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from control_plane import pki
from data_plane.cache import CacheError, ConfigCache, read_cache, write_cache
from shared.messages import encode_config
from shared.snapshot import Snapshot, build_config, make_snapshot
from tests.support.dataplane import DataPlaneProcess, start_data_plane
from tests.support.processes import free_port

GROUP = "5d7c9a7e-1d2b-4c1e-9f3a-2b1c0d9e8f70"
OTHER = "0b6f4a1e-7c2d-4e5f-8a9b-1c2d3e4f5a6b"


def _snapshot(version: int, group_id: str = GROUP) -> Snapshot:
    service = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": f"svc-{version}",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 8080,
        "enabled": True,
    }
    return make_snapshot(group_id, version, build_config({"services": [service]}))


def test_a_written_snapshot_reads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    write_cache(path, _snapshot(3))
    assert read_cache(path, GROUP) == _snapshot(3)


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    write_cache(path, _snapshot(3))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    write_cache(path, _snapshot(3))
    write_cache(path, _snapshot(4))
    assert read_cache(path, GROUP).version == 4
    assert [p.name for p in tmp_path.iterdir()] == ["config.cache"]


def test_a_failed_rename_keeps_nothing_half_written(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    path.mkdir()  # renaming a file over a directory fails
    with pytest.raises(OSError):
        write_cache(path, _snapshot(3))
    assert [p.name for p in tmp_path.iterdir()] == ["config.cache"]


def test_a_file_of_another_group_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    write_cache(path, _snapshot(3, OTHER))
    with pytest.raises(CacheError, match=f"belongs to runtime group {OTHER}"):
        read_cache(path, GROUP)


def test_a_config_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    frame = encode_config(_snapshot(3))
    head, _, _ = frame.partition(b"\n")
    # Same header, same size, other content: only the hash can tell.
    body = orjson.dumps(dict(_snapshot(7).config))
    header = orjson.loads(head)
    header["size"] = len(body)
    path.write_bytes(orjson.dumps(header) + b"\n" + zlib.compress(body))
    with pytest.raises(CacheError, match="does not match its hash"):
        read_cache(path, GROUP)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    path.write_bytes(encode_config(_snapshot(3))[:-10])
    with pytest.raises(CacheError, match="corrupt"):
        read_cache(path, GROUP)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    path.write_bytes(b"\x00\x01 not a config")
    with pytest.raises(CacheError, match="not a config file"):
        read_cache(path, GROUP)


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.cache"
    write_cache(path, _snapshot(3))
    with pytest.raises(CacheError, match="larger than 16 bytes"):
        read_cache(path, GROUP, max_size=16)


def test_no_file_loads_nothing_and_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert ConfigCache(tmp_path, GROUP).load() is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_refused_file_loads_nothing_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_cache(tmp_path / "config.cache", _snapshot(3, OTHER))
    assert ConfigCache(tmp_path, GROUP).load() is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "refusing cached config" in warnings[0].getMessage()
    assert OTHER in warnings[0].getMessage()


async def test_kept_snapshots_end_on_disk_newest_last(tmp_path: Path) -> None:
    cache = ConfigCache(tmp_path, GROUP)
    for version in range(1, 6):
        cache.keep(_snapshot(version))
    await cache.flush()
    assert cache.load() == _snapshot(5)


async def test_a_write_failure_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ConfigCache(tmp_path / "missing", GROUP)
    for version in (1, 2):
        cache.keep(_snapshot(version))
        await cache.flush()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "cannot write cached config" in warnings[0].getMessage()


# A node process started while its control plane is unreachable.


def _start_offline_node(tmp_path: Path, prefix: Path) -> DataPlaneProcess:
    cert_pem, key_pem = pki.generate_client_certificate("offline-node")
    (tmp_path / "node.crt").write_text(cert_pem)
    (tmp_path / "node.key").write_text(key_pem)
    return start_data_plane(
        tmp_path,
        # Nothing listens there: the control plane is down.
        control_plane=f"https://127.0.0.1:{free_port()}/cp/{GROUP}",
        cert=tmp_path / "node.crt",
        key=tmp_path / "node.key",
        wait_ready=False,
        prefix=str(prefix),
    )


def _ready(node: DataPlaneProcess) -> int:
    try:
        with urllib.request.urlopen(node.status_url + "/status/ready", timeout=5):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_node_started_offline_serves_its_cached_config(tmp_path: Path) -> None:
    prefix = tmp_path / "dp"
    prefix.mkdir()
    write_cache(prefix / "config.cache", _snapshot(3))
    with _start_offline_node(tmp_path, prefix) as node:
        assert _ready(node) == 200
        config = node.status()["config"]
    assert (config["version"], config["hash"]) == (3, _snapshot(3).hash)
    assert config["source"] == "cache"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda: b"\x00 not a config", "not a config file"),
        (lambda: encode_config(_snapshot(3))[:-10], "corrupt"),
        (lambda: encode_config(_snapshot(3, OTHER)), "belongs to runtime group"),
    ],
    ids=["garbage", "truncated", "foreign"],
)
def test_a_node_started_offline_never_serves_an_unfit_cache(
    tmp_path: Path, content: Callable[[], bytes], reason: str
) -> None:
    prefix = tmp_path / "dp"
    prefix.mkdir()
    (prefix / "config.cache").write_bytes(content())
    with _start_offline_node(tmp_path, prefix) as node:
        assert _ready(node) == 503
        assert node.status()["config"]["version"] is None
    refusals = [
        line for line in node.output().splitlines() if "refusing cached config" in line
    ]
    assert len(refusals) == 1, node.output()
    assert "WARNING" in refusals[0] and reason in refusals[0]
