"""The compiled request path: used only while it matches the source."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.dataplane import start_data_plane

from data_plane import native


def _fake_checkout(root: Path) -> Path:
    """Make a checkout with one module per digested package and a build of it."""
    for package in ("data_plane", "shared"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text(f'"""{package}"""\n')
    build = root / "build" / "native"
    (build / "data_plane").mkdir(parents=True)
    library = f"data_plane/router{native.abi()}"
    (build / library).write_bytes(b"not really a library")
    manifest = {
        "abi": native.abi(),
        "digest": native.source_digest(root),
        "files": {"data_plane.router": library},
    }
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    return build


def test_a_build_is_current_while_every_digested_module_is_unchanged(
    tmp_path: Path,
) -> None:
    build = _fake_checkout(tmp_path)
    assert native.check(build, tmp_path) is None

    (tmp_path / "shared" / "__init__.py").write_text('"""changed"""\n')
    assert native.check(build, tmp_path) == "stale: the source changed since the build"


def test_a_new_module_makes_the_build_stale(tmp_path: Path) -> None:
    build = _fake_checkout(tmp_path)
    (tmp_path / "data_plane" / "extra.py").write_text("X = 1\n")
    assert native.check(build, tmp_path) == "stale: the source changed since the build"


def test_a_build_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    build = _fake_checkout(tmp_path)
    manifest = json.loads((build / native.MANIFEST).read_text())
    manifest["abi"] = ".cpython-39-x86_64-linux-gnu.so"
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    why = native.check(build, tmp_path)
    assert why is not None and why.startswith("stale: built for .cpython-39")


def test_a_build_missing_a_library_or_its_manifest_is_not_used(
    tmp_path: Path,
) -> None:
    build = _fake_checkout(tmp_path)
    (build / f"data_plane/router{native.abi()}").unlink()
    assert native.check(build, tmp_path) == "stale: missing data_plane.router"
    (build / native.MANIFEST).unlink()
    assert native.check(build, tmp_path) == "absent"
    (build / native.MANIFEST).write_text("{not json")
    why = native.check(build, tmp_path)
    assert why is not None and why.startswith("stale: unreadable manifest")


def test_require_refuses_a_stale_build_and_off_ignores_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _fake_checkout(tmp_path)
    (tmp_path / "data_plane" / "__init__.py").write_text('"""changed"""\n')
    monkeypatch.setattr(native, "state", native.state)
    finders = list(sys.meta_path)

    monkeypatch.setenv(native.ENV, "require")
    with pytest.raises(native.NativeError, match="the source changed"):
        native.install(build, tmp_path)
    monkeypatch.setenv(native.ENV, "auto")
    assert native.install(build, tmp_path).startswith("stale")
    monkeypatch.setenv(native.ENV, "off")
    assert native.install(build, tmp_path) == "off"
    assert sys.meta_path == finders


def test_the_request_path_modules_come_from_where_the_state_says() -> None:
    if os.environ.get(native.ENV) == "require":
        assert native.state == "compiled"
    for name in native.MODULES:
        file = str(importlib.import_module(name).__file__)
        if native.state == "compiled":
            assert file.startswith(str(native.BUILD_DIR))
            assert file.endswith(native.abi())
        else:
            assert file.endswith(".py")


def test_a_node_says_which_request_path_it_runs(tmp_path: Path) -> None:
    node = start_data_plane(tmp_path, declarative={"_format_version": "3.0"})
    assert node.stop() == 0
    (line,) = [line for line in node.output().splitlines() if "proxy on" in line]
    expected = "compiled" if native.state == "compiled" else "Python source"
    assert f"1 process, {expected})" in line


@pytest.mark.parametrize("if_possible", [False, True])
def test_a_build_without_a_c_compiler_says_what_is_missing(
    tmp_path: Path, if_possible: bool
) -> None:
    command = [sys.executable, "scripts/native.py", "build"]
    command += ["--build-dir", str(tmp_path / "native")]
    command += ["--if-possible"] if if_possible else []
    done = subprocess.run(
        command,
        cwd=native.ROOT,
        env=os.environ | {"CC": str(tmp_path / "no-such-cc")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == (0 if if_possible else 1)
    assert f"no C compiler ({tmp_path / 'no-such-cc'})" in done.stderr
    assert not (tmp_path / "native").exists()
