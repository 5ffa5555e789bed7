"""Run a local Portico: a control plane on SQLite and the echo upstream.

Both run in the foreground until Ctrl-C or SIGTERM, which stops them in order.
The admin token is kept in var/admin-token (mode 0600) so that `make dp` and
`make demo` can use it; export PORTICO_ADMIN_TOKEN to choose your own. Running
it again reuses var/: the same database, token and cluster certificate.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from admin_client import ROOT, TOKEN_FILE, VAR

# What each address is for, to say so when it is taken.
LISTENERS = (
    ("admin_listen", "admin API", "127.0.0.1:8001"),
    ("cluster_listen", "cluster listener", "127.0.0.1:8005"),
    ("cluster_telemetry_listen", "telemetry listener", "127.0.0.1:8006"),
    ("echo_listen", "echo upstream", "127.0.0.1:8080"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the addresses from the command line and PORTICO_<OPTION>."""
    parser = argparse.ArgumentParser(
        prog="scripts/up.py",
        description=(
            "`make up` runs this: a local Portico control plane on SQLite (under "
            "var/, or PORTICO_VAR) and the "
            "echo upstream, in the foreground until Ctrl-C. Every option can "
            "also be set as PORTICO_<OPTION>, e.g. PORTICO_ADMIN_LISTEN."
        ),
    )
    for dest, what, default in LISTENERS:
        option = "--" + dest.replace("_", "-")
        env = "PORTICO_" + dest.upper()
        parser.add_argument(
            option,
            metavar="HOST:PORT",
            default=os.environ.get(env, default),
            help=f"address of the {what} (env {env}, default {default})",
        )
    return parser.parse_args(argv)


def admin_token() -> str:
    """Return the token to start the control plane with, creating it once."""
    token = os.environ.get("PORTICO_ADMIN_TOKEN")
    if token:
        return token
    if TOKEN_FILE.exists():
        return TOKEN_FILE.read_text().strip()
    VAR.mkdir(parents=True, exist_ok=True)
    token = "kpat_" + secrets.token_urlsafe(36)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def check_free(address: str, what: str, option: str) -> None:
    """Exit with a clear message if `address` cannot be listened on."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit():
        raise SystemExit(f"portico: --{option} must be host:port, got {address!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            env = "PORTICO_" + option.upper().replace("-", "_")
            raise SystemExit(
                f"portico: cannot listen on {address} ({what}): "
                f"{exc.strerror or exc}.\n"
                "Is `make up` already running in another terminal? Stop it, "
                f"or choose another address with {env}=HOST:PORT."
            ) from None


def wait_answer(
    url: str, process: subprocess.Popen[bytes], what: str, deadline: float
) -> None:
    """Wait until `url` answers, failing if `process` exits first."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"portico: the {what} exited with status {process.returncode}; "
                "see its message above"
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"portico: the {what} did not answer {url} in time")


def banner(args: argparse.Namespace, token: str) -> str:
    """Return what a user needs once everything is up."""
    admin_url = f"http://{args.admin_listen}"
    shown_token = TOKEN_FILE
    if TOKEN_FILE.is_relative_to(Path.cwd()):
        shown_token = TOKEN_FILE.relative_to(Path.cwd())
    return f"""
Portico is up.
  admin API      {admin_url}   (browser UI: {admin_url}/ui/)
  admin token    {token}
  echo upstream  http://{args.echo_listen}
  data under     {VAR}

Next steps, in a second terminal:
  make demo             # the composite walkthrough end to end, with propagation times
  make dp GROUP=CRG     # or attach a data plane node to a runtime group yourself
  export PORTICO_ADMIN_TOKEN=$(cat {shown_token})   # for curl, see README.md
Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    """Start both processes, print the banner, stop both on a signal."""
    args = parse_args(argv)
    for dest, what, _ in LISTENERS:
        check_free(getattr(args, dest), what, dest.replace("_", "-"))
    token = admin_token()
    env = dict(os.environ, PORTICO_ADMIN_TOKEN=token)
    python = sys.executable

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        echo = subprocess.Popen(
            [python, "-m", "echo_upstream", "--listen", args.echo_listen],
            env=env,
            cwd=ROOT,
        )
        children.append(("echo upstream", echo))
        control_plane = subprocess.Popen(
            [
                python,
                "-m",
                "control_plane",
                "--prefix",
                str(VAR / "cp"),
                "--admin-listen",
                args.admin_listen,
                "--cluster-listen",
                args.cluster_listen,
                "--cluster-telemetry-listen",
                args.cluster_telemetry_listen,
            ],
            env=env,
            cwd=ROOT,
        )
        # Stopped first, so that data plane nodes see it leave cleanly.
        children.insert(0, ("control plane", control_plane))
        deadline = time.monotonic() + 30
        health = f"http://{args.admin_listen}/health"
        wait_answer(health, control_plane, "control plane", deadline)
        ready = f"http://{args.echo_listen}/status/200"
        wait_answer(ready, echo, "echo upstream", deadline)
        print(banner(args, token), flush=True)
        while True:
            for what, child in children:
                if child.poll() is not None:
                    print(
                        f"portico: the {what} exited with status {child.returncode}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
