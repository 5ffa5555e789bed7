"""Compile the data plane's request path with mypyc, or check the build.

`python scripts/native.py build` compiles the modules that
`data_plane.native.MODULES` lists into `build/native/`; `check` says whether
a node started now would run them (see `data_plane/native.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from data_plane import native


def build(
    build_dir: Path = native.BUILD_DIR, root: Path = native.ROOT, *, jobs: int = 2
) -> None:
    """Compile `native.MODULES` into `build_dir`, replacing what is there."""
    # Imported here: `check` works where only the node is installed.
    from mypyc.build import mypycify
    from setuptools import Distribution

    digest = native.source_digest(root)
    sources = [
        str(Path(*name.split(".")).with_suffix(".py")) for name in native.MODULES
    ]
    with tempfile.TemporaryDirectory(prefix="portico-native-") as scratch:
        work = Path(scratch)
        cwd = Path.cwd()
        os.chdir(root)  # mypyc names modules after their paths from here
        try:
            extensions = mypycify(
                sources, opt_level="3", target_dir=str(work / "c"), verbose=False
            )
            distribution = Distribution({"name": "portico-native"})
            distribution.ext_modules = extensions
            command = distribution.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            command.parallel = jobs
            distribution.run_command("build_ext")
        finally:
            os.chdir(cwd)

        built = work / "lib"
        files: dict[str, str] = {}
        for library in built.rglob("*" + native.abi()):
            relative = library.relative_to(built)
            name = ".".join(relative.parts)[: -len(native.abi())]
            files[name] = relative.as_posix()
        missing = set(native.MODULES) - set(files)
        if missing:
            raise RuntimeError(f"mypyc built no module for {sorted(missing)}")
        if build_dir.exists():
            shutil.rmtree(build_dir)
        shutil.copytree(built, build_dir)
        manifest = {"abi": native.abi(), "digest": digest, "files": files}
        (build_dir / native.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def missing_toolchain() -> str | None:
    """Say what a build lacks on this machine: a C compiler or Python's headers."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = shlex.split(configured)[:1] or ["cc"]
    if shutil.which(compiler[0]) is None:
        return f"no C compiler ({compiler[0]})"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"no Python headers ({headers})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Build the compiled modules, or say whether the current build is used."""
    parser = argparse.ArgumentParser(
        prog="python scripts/native.py",
        description="Compile the data plane's request path with mypyc, or "
        "check whether the compiled build matches the source.",
    )
    parser.add_argument(
        "command",
        choices=("build", "check"),
        help="build: compile into the build directory; check: print whether "
        "a node would run the compiled modules (exit 1 if not)",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=native.BUILD_DIR,
        help=f"where the compiled modules go (default {native.BUILD_DIR})",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="C compilers run at once (default 2)"
    )
    parser.add_argument(
        "--if-possible",
        action="store_true",
        help="without a C compiler or Python's headers, say so and exit 0: "
        "nodes then run the Python source",
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        why = native.check(args.build_dir)
        print(why or "current")
        return 1 if why else 0
    lacking = missing_toolchain()
    if lacking is not None:
        print(
            f"cannot compile the data plane's request path: {lacking}; "
            "install a C compiler and the Python development headers "
            "(Debian: apt-get install gcc python3-dev)",
            file=sys.stderr,
        )
        if args.if_possible:
            print("data plane nodes will run the Python source", file=sys.stderr)
            return 0
        return 1
    started = time.monotonic()
    print(
        f"compiling {len(native.MODULES)} data plane modules with mypyc "
        "(about a minute) ...",
        flush=True,
    )
    build(args.build_dir, jobs=args.jobs)
    print(f"built into {args.build_dir} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
