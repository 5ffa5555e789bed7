"""Run a local Portico: a control plane on SQLite and the echo upstream.

Both run in the foreground until Ctrl-C or SIGTERM, which stops them in order.
The admin token is kept in var/admin-token (mode 0600) so that `make dp` and
`make demo` can use it; export PORTICO_ADMIN_TOKEN to choose your own.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from admin_client import TOKEN_FILE, VAR


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run a local Portico control plane and the echo upstream."
    )
    parser.add_argument(
        "--admin-listen",
        default=os.environ.get("PORTICO_ADMIN_LISTEN", "127.0.0.1:8001"),
        help="admin API address (env PORTICO_ADMIN_LISTEN)",
    )
    parser.add_argument(
        "--echo-listen",
        default=os.environ.get("PORTICO_ECHO_LISTEN", "127.0.0.1:8080"),
        help="echo upstream address (env PORTICO_ECHO_LISTEN)",
    )
    return parser.parse_args()


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


def wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the control plane exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the control plane did not answer {url} in time")


def main() -> None:
    args = parse_args()
    token = admin_token()
    env = dict(os.environ, PORTICO_ADMIN_TOKEN=token)
    python = sys.executable

    echo = subprocess.Popen(
        [python, "-m", "echo_upstream", "--listen", args.echo_listen], env=env
    )
    control_plane = subprocess.Popen(
        [
            python,
            "-m",
            "control_plane",
            "--prefix",
            str(VAR / "cp"),
            "--admin-listen",
            args.admin_listen,
        ],
        env=env,
    )
    children = [control_plane, echo]

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        admin_url = f"http://{args.admin_listen}"
        wait_healthy(admin_url + "/health", control_plane, time.monotonic() + 30)
        print(
            f"""
Portico is up.
  admin API      {admin_url}
  admin token    {token}
  echo upstream  http://{args.echo_listen}

Next steps:
  export PORTICO_ADMIN_TOKEN={token}
  make demo                 # runs the composite walkthrough end to end
  make dp GROUP=<name>      # attaches a data plane node to a runtime group
  README.md walks through every step with curl.
Ctrl-C stops everything.
""",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        # Stop the control plane first so data plane nodes see it leave cleanly.
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
