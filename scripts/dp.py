"""Attach a data plane node to a runtime group, the way Konnect hands out a script.

Generates a key pair pinned to the group through the admin API (the private key
is shown only once and written with mode 0600), reads the group's endpoints and
starts `python -m data_plane` with them. Run again, it reuses the key pair if it
is still pinned to the group, and pins a new one otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from admin_client import (
    DEFAULT_ADMIN_URL,
    ROOT,
    VAR,
    AdminClient,
    AdminError,
    read_token,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the options from the command line and PORTICO_<OPTION>."""
    parser = argparse.ArgumentParser(
        prog="scripts/dp.py",
        description=(
            "`make dp GROUP=<name>` runs this: start a data plane node for a "
            "runtime group of the local control "
            "plane: pin a client certificate to the group, then run "
            "`python -m data_plane` against the group's endpoints. Every option "
            "can also be set as PORTICO_<OPTION>, e.g. PORTICO_PROXY_LISTEN."
        ),
    )

    def option(name: str, default: str | None, help: str) -> None:
        env = "PORTICO_" + name.upper().replace("-", "_")
        shown = f", default {default}" if default else ""
        parser.add_argument(
            f"--{name}",
            default=os.environ.get(env, default),
            help=f"{help} (env {env}{shown})",
        )

    option("group", None, "runtime group name or id (required)")
    option("admin-url", DEFAULT_ADMIN_URL, "control plane admin API")
    option("proxy-listen", "127.0.0.1:8000", "address of the node's proxy")
    option("status-listen", "127.0.0.1:8100", "address of the node's status API")
    option("prefix", None, "the node's directory (default var/dp-<group>)")
    args = parser.parse_args(argv)
    if not args.group:
        parser.error("--group is required: make dp GROUP=<runtime group name>")
    return args


def write_secret(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def fingerprint(pem: str) -> str:
    """Return the SHA-256 fingerprint of a PEM certificate."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def is_pinned(client: AdminClient, group_id: str, cert: Path) -> bool:
    """Tell whether the certificate in `cert` is pinned to the group."""
    try:
        mine = fingerprint(cert.read_text())
    except (OSError, ValueError):
        return False
    path = f"/v2/runtime-groups/{group_id}/dp-client-certificates"
    pinned = client.request("GET", path)["items"]
    return any(fingerprint(item["cert"]) == mine for item in pinned)


def check_attachable(client: AdminClient, group: dict[str, Any]) -> None:
    """Exit with the reason if nodes cannot connect to the group."""
    path = f"/v2/runtime-groups/{group['id']}/composite-member-status"
    if client.request("GET", path).get("is_member"):
        raise SystemExit(
            f"portico: runtime group {group['name']} is a member of a composite "
            "runtime group, and data plane nodes connect to the composite: "
            "make dp GROUP=<composite name>"
        )


def command_for(args: argparse.Namespace) -> list[str]:
    """Return the data plane command line, pinning its certificate if needed."""
    client = AdminClient(args.admin_url, read_token())
    group = client.group(args.group)
    check_attachable(client, group)
    prefix = Path(args.prefix).resolve() if args.prefix else VAR / f"dp-{group['name']}"
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = prefix / "cluster.crt", prefix / "cluster.key"
    if not (key.exists() and is_pinned(client, group["id"], cert)):
        generated = client.request(
            "POST",
            f"/v2/runtime-groups/{group['id']}/dp-client-certificates/generate",
            {"title": f"{group['name']} local node"},
        )
        cert.write_text(generated["item"]["cert"])
        write_secret(key, generated["private_key"])
        print(
            f"pinned a new client certificate to runtime group {group['name']}: "
            f"{cert}, key {key}"
        )
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
    # The control plane `make up` runs generates its own certificate there.
    ca = VAR / "cp" / "cluster.crt"
    if ca.exists():
        command += ["--cluster-ca-cert", str(ca)]
    return command


def main(argv: list[str] | None = None) -> None:
    """Pin a certificate if needed, then become the data plane node."""
    args = parse_args(argv)
    try:
        command = command_for(args)
    except AdminError as error:
        raise SystemExit(f"portico: the admin API refused: {error}") from None
    print("starting:", " ".join(command), flush=True)
    # Run from the checkout so that `python -m data_plane` finds the package.
    os.chdir(ROOT)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
