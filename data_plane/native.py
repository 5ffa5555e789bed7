"""Run the proxy path compiled to C with mypyc, when a build matches the source.

The request path (the proxy, the router, the plugins and the compiled
config they read) is plain typed Python. mypyc, mypy's compiler, turns
those modules into C extensions with native attribute access and direct
calls between them, which roughly halves the interpreter's share of each
request. The source stays the one truth: the extensions are built from it
unchanged, and the same code runs as Python wherever no build is present.

`python scripts/native.py build` (run by `make`) compiles the modules in `MODULES` into
`build/native/` at the top of the checkout and writes a manifest with a
digest of every data plane and shared module. At startup, :func:`install`
serves those modules from the build only while the digest still matches the
source; after any edit the node runs the Python source until the next build
(`make` rebuilds on every change). `PORTICO_NATIVE` chooses: `auto` (the
default) as described, `off` for the Python source, `require` to fail
instead of falling back (the test command sets it, so the tests run what a
node runs).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "native"
MANIFEST = "manifest.json"
ENV = "PORTICO_NATIVE"

# What a request runs through, and the config compiler that feeds it.
MODULES = (
    "data_plane.router",
    "data_plane.runtime.paths",
    "data_plane.runtime.compiled",
    "data_plane.proxy.exchange",
    "data_plane.proxy.hold",
    "data_plane.proxy.responses",
    "data_plane.proxy.server",
    "data_plane.proxy.upstream",
    "data_plane.plugins.acl",
    "data_plane.plugins.arguments",
    "data_plane.plugins.base",
    "data_plane.plugins.basic_auth",
    "data_plane.plugins.correlation_id",
    "data_plane.plugins.cors",
    "data_plane.plugins.identity",
    "data_plane.plugins.ip_restriction",
    "data_plane.plugins.key_auth",
    "data_plane.plugins.prometheus",
    "data_plane.plugins.rate_limiting",
    "data_plane.plugins.registry",
    "data_plane.plugins.request_edits",
    "data_plane.plugins.request_size_limiting",
    "data_plane.plugins.request_termination",
    "data_plane.plugins.request_transformer",
    "data_plane.plugins.response_transformer",
    "data_plane.plugins.scoped",
)
# Compiled code relies on the types of everything it imports: a build is
# current only while none of these packages has changed.
_DIGESTED = ("data_plane", "shared")

# What install() found: "compiled", "off", "absent" or "stale: <why>".
state = "absent"


class NativeError(ImportError):
    """The compiled modules were required but cannot be used."""


def source_digest(root: Path = ROOT) -> str:
    """Return a digest of every module the compiled code was checked against."""
    digest = hashlib.sha256()
    for package in _DIGESTED:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def abi() -> str:
    """Return the extension suffix this interpreter loads, e.g. `.cpython-311-…so`."""
    return importlib.machinery.EXTENSION_SUFFIXES[0]


class _Finder(importlib.abc.MetaPathFinder):
    """Find the compiled modules (and mypyc's shared library) in the build."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def _usable(build_dir: Path, root: Path) -> dict[str, Path] | str:
    """Return the build's module files, or why they cannot be used."""
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return "absent"
    except (OSError, ValueError) as exc:
        return f"stale: unreadable manifest ({exc})"
    if manifest.get("abi") != abi():
        return f"stale: built for {manifest.get('abi')}, running {abi()}"
    if manifest.get("digest") != source_digest(root):
        return "stale: the source changed since the build"
    files = {name: build_dir / file for name, file in manifest["files"].items()}
    missing = [name for name, file in files.items() if not file.is_file()]
    if missing:
        return f"stale: missing {', '.join(sorted(missing))}"
    return files


def mode() -> str:
    """Return what `PORTICO_NATIVE` asks for: "auto", "off" or "require"."""
    asked = os.environ.get(ENV, "auto").strip().lower() or "auto"
    return "off" if asked in ("off", "0", "no", "false") else asked


def install(build_dir: Path = BUILD_DIR, root: Path = ROOT) -> str:
    """Serve the compiled modules if the build is current; return the state.

    Must run before any module in `MODULES` is imported (the package's
    `__init__` calls it). Raises :class:`NativeError` when `PORTICO_NATIVE`
    is `require` and the build cannot be used.
    """
    global state
    if mode() == "off":
        state = "off"
        return state
    found = _usable(build_dir, root)
    if isinstance(found, str):
        state = found
        if mode() == "require":
            raise NativeError(
                f"{ENV}=require, but the compiled modules in {build_dir} are "
                f"{found}; build them with `python scripts/native.py build`"
            )
        return state
    already = [name for name in MODULES if name in sys.modules]
    if already:
        raise NativeError(f"imported before the compiled modules: {already}")
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder(found))
    state = "compiled"
    return state


def check(build_dir: Path = BUILD_DIR, root: Path = ROOT) -> str | None:
    """Return why the build in `build_dir` cannot be used, or None if it can."""
    found = _usable(build_dir, root)
    return found if isinstance(found, str) else None
