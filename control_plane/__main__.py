"""Command line of the control plane: serve, token, dp-cert.

Every option also reads an environment variable `PORTICO_<OPTION>`, e.g.
`--admin-listen` reads PORTICO_ADMIN_LISTEN.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.settings import DEFAULT_MAX_PAYLOAD, Listen, Settings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get("PORTICO_" + name.upper().replace("-", "_"), default)


def _option(
    parser: argparse.ArgumentParser,
    name: str,
    help: str,
    default: str | None = None,
    *,
    suppress: bool = False,
) -> None:
    env = "PORTICO_" + name.upper().replace("-", "_")
    shown = f" (default: {default})" if default is not None else ""
    parser.add_argument(
        f"--{name}",
        # A subcommand repeats the options without overriding the root's values.
        default=argparse.SUPPRESS if suppress else _env(name, default),
        help=f"{help}{shown}; env {env}",
    )


def _serve_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    options = (
        ("admin-listen", "host:port of the admin API", "127.0.0.1:8001"),
        ("cluster-listen", "host:port data plane nodes connect to", "127.0.0.1:8005"),
        (
            "cluster-telemetry-listen",
            "host:port data plane nodes send telemetry to",
            "127.0.0.1:8006",
        ),
        ("prefix", "data directory", "./var/cp"),
        ("database", "SQLite database file (default: <prefix>/portico.db)", None),
        (
            "cluster-public-url",
            "base URL of the cluster listener in group endpoints "
            "(default: https://<cluster-listen>)",
            None,
        ),
        (
            "telemetry-public-url",
            "base URL of the telemetry listener in group endpoints "
            "(default: https://<cluster-telemetry-listen>)",
            None,
        ),
        ("cluster-cert", "PEM certificate of the cluster listener", None),
        ("cluster-cert-key", "PEM private key of the cluster listener", None),
        (
            "cluster-max-payload",
            "largest WebSocket message in bytes taken from or pushed to a data "
            "plane node; a node sending more is disconnected, a larger config "
            "is not pushed",
            str(DEFAULT_MAX_PAYLOAD),
        ),
        (
            "cluster-ping-interval",
            "seconds between pings to each data plane node; a node silent for "
            "as long again is disconnected",
            "20",
        ),
        ("log-level", "debug, info, warning or error", "info"),
    )
    for name, help, default in options:
        _option(parser, name, help, default, suppress=suppress)


def _client_options(parser: argparse.ArgumentParser) -> None:
    _option(parser, "admin-url", "admin API base URL", "http://127.0.0.1:8001")
    parser.add_argument(
        "--token",
        default=os.environ.get("PORTICO_ADMIN_TOKEN"),
        help="admin API token; env PORTICO_ADMIN_TOKEN",
    )


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m control_plane`."""
    root = argparse.ArgumentParser(
        prog="python -m control_plane",
        description="Portico control plane: admin API and cluster listener.",
    )
    _serve_options(root)
    commands = root.add_subparsers(dest="command")
    _serve_options(
        commands.add_parser("serve", help="run the control plane (default)"), True
    )

    token = commands.add_parser("token", help="create, list or revoke admin API tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it once")
    _client_options(create)
    create.add_argument("--name", required=True, help="what the token is for")
    create.add_argument(
        "--role",
        default="viewer",
        choices=["organization_admin", "runtime_group_admin", "viewer"],
        help="what the token may do (default: viewer)",
    )
    create.add_argument(
        "--group", action="append", default=[], help="scope (repeatable)"
    )
    create.add_argument("--system", action="store_true", help="a system token (spat_)")
    _client_options(actions.add_parser("list", help="list tokens"))
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    _client_options(revoke)
    revoke.add_argument("token_id")

    cert = commands.add_parser(
        "dp-cert", help="generate and pin a data plane client certificate"
    )
    _client_options(cert)
    cert.add_argument("--group", required=True, help="runtime group name or id")
    cert.add_argument("--out", required=True, type=Path, help="directory for the files")
    return root


def settings_from(args: argparse.Namespace) -> Settings:
    """Build the settings of `serve` from parsed arguments."""
    admin = Listen.parse(args.admin_listen)
    cluster = Listen.parse(args.cluster_listen)
    telemetry = Listen.parse(args.cluster_telemetry_listen)
    prefix = Path(args.prefix)
    if args.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    max_payload = str(args.cluster_max_payload)
    if not max_payload.isdigit() or int(max_payload) < 1024:
        raise ValueError(
            f"--cluster-max-payload must be at least 1024 bytes, got {max_payload!r}"
        )
    try:
        ping_interval = float(args.cluster_ping_interval)
    except ValueError:
        ping_interval = 0.0
    if not 0.1 <= ping_interval <= 3600:
        raise ValueError(
            "--cluster-ping-interval must be 0.1 to 3600 seconds, "
            f"got {args.cluster_ping_interval!r}"
        )
    return Settings(
        admin_listen=admin,
        cluster_listen=cluster,
        telemetry_listen=telemetry,
        prefix=prefix,
        database=Path(args.database) if args.database else prefix / "portico.db",
        cluster_public_url=args.cluster_public_url or f"https://{cluster}",
        telemetry_public_url=args.telemetry_public_url or f"https://{telemetry}",
        cluster_cert=Path(args.cluster_cert) if args.cluster_cert else None,
        cluster_cert_key=Path(args.cluster_cert_key) if args.cluster_cert_key else None,
        log_level=args.log_level.lower(),
        admin_token=os.environ.get("PORTICO_ADMIN_TOKEN") or None,
        cluster_max_payload=int(max_payload),
        cluster_ping_interval=ping_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    if args.command in ("token", "dp-cert"):
        from control_plane import cli

        return cli.run(args)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"portico: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "debug":
        # websockets logs each node connection at INFO; the cluster listener
        # logs the lifecycle with the node id instead.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    from control_plane.server import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
