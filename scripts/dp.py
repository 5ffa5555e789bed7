"""Attach a data plane node to a runtime group, the way Konnect hands out a script.

Generates a key pair pinned to the group through the admin API (the private key
is shown only once and written with mode 0600), reads the group's endpoints and
starts `python -m data_plane` with them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from admin_client import DEFAULT_ADMIN_URL, VAR, AdminClient, read_token


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Start a data plane node for a runtime group."
    )
    parser.add_argument("--group", required=True, help="runtime group name")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("PORTICO_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="control plane admin API (env PORTICO_ADMIN_URL)",
    )
    parser.add_argument(
        "--proxy-listen",
        default=os.environ.get("PORTICO_PROXY_LISTEN", "127.0.0.1:8000"),
        help="proxy address (env PORTICO_PROXY_LISTEN)",
    )
    parser.add_argument(
        "--status-listen",
        default=os.environ.get("PORTICO_STATUS_LISTEN", "127.0.0.1:8100"),
        help="status address (env PORTICO_STATUS_LISTEN)",
    )
    parser.add_argument(
        "--prefix", help="data plane directory (default var/dp-<group>)"
    )
    return parser.parse_args()


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def command_for(args: argparse.Namespace) -> list[str]:
    """Return the data plane command line, creating its certificate if needed."""
    client = AdminClient(args.admin_url, read_token())
    group = client.group(args.group)
    prefix = Path(args.prefix or VAR / f"dp-{args.group}")
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = prefix / "cluster.crt", prefix / "cluster.key"
    if not (cert.exists() and key.exists()):
        generated = client.request(
            "POST",
            f"/v2/runtime-groups/{group['id']}/dp-client-certificates/generate",
            {"title": f"{args.group} local node"},
        )
        cert.write_text(generated["item"]["cert"])
        write_secret(key, generated["private_key"])
        print(f"pinned a new client certificate to runtime group {args.group}")
    command = [
        sys.executable,
        "-m",
        "data_plane",
        "--cluster-control-plane",
        group["config"]["control_plane_endpoint"],
        "--cluster-telemetry-endpoint",
        group["config"]["telemetry_endpoint"],
        "--cluster-cert",
        str(cert),
        "--cluster-cert-key",
        str(key),
        "--proxy-listen",
        args.proxy_listen,
        "--status-listen",
        args.status_listen,
        "--prefix",
        str(prefix),
    ]
    ca = VAR / "cp" / "cluster.crt"
    if ca.exists():
        command += ["--cluster-ca-cert", str(ca)]
    return command


def main() -> None:
    args = parse_args()
    command = command_for(args)
    print("starting:", " ".join(command), flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
