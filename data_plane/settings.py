"""Read a data plane node's settings from its command line and environment.

Every option `--some-option` can also be given as `PORTICO_SOME_OPTION`; the
command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_plane.plugins.registry import FACTORIES
from shared.errors import ValidationError
from shared.messages import MAX_FRAME_SIZE

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_WORKERS = 64


@dataclass(frozen=True)
class Address:
    """A host and port to listen on or connect to."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, option: str) -> Address:
        """Parse `host:port` (IPv6 hosts in brackets) or raise ValidationError."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValidationError(f"{option} must be host:port, got {text!r}")
        host = host.strip("[]") or "0.0.0.0"
        return cls(host, int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Hold every option of a data plane node; the sync agent reads the cluster ones."""

    cluster_control_plane: str | None = None
    cluster_telemetry_endpoint: str | None = None
    cluster_telemetry_interval: float = 10.0
    cluster_cert: Path | None = None
    cluster_cert_key: Path | None = None
    cluster_ca_cert: Path | None = None
    cluster_ping_interval: float = 20.0
    cluster_max_payload: int = MAX_FRAME_SIZE
    proxy_listen: Address = Address("0.0.0.0", 8000)
    status_listen: Address = Address("127.0.0.1", 8100)
    prefix: Path = Path("var/dp")
    declarative_config: Path | None = None
    log_level: str = "info"
    node_labels: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    plugins: tuple[str, ...] = ()  # empty: every bundled plugin


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; `--help` documents every option."""
    parser = argparse.ArgumentParser(
        prog="python -m data_plane",
        description=(
            "Run a Portico data plane node: proxy HTTP on the routes of a runtime "
            "group received from the control plane, or of a declarative file. "
            "Every option can also be set as an environment variable "
            "PORTICO_<OPTION> (for example PORTICO_PROXY_LISTEN)."
        ),
        epilog=(
            "PORTICO_NATIVE chooses the request path: auto (the default) runs "
            "the modules compiled by `make` while they match the source and "
            "the Python source otherwise, off always the source, require "
            "refuses to start without a current build. `python "
            "scripts/native.py check` says which a node would run."
        ),
    )
    add = parser.add_argument
    add(
        "--cluster-control-plane",
        metavar="URL",
        help="the runtime group's control_plane_endpoint, for example "
        "https://127.0.0.1:8005/cp/<group id>",
    )
    add(
        "--cluster-telemetry-endpoint",
        metavar="URL",
        help="the runtime group's telemetry_endpoint",
    )
    add(
        "--cluster-telemetry-interval",
        metavar="SECONDS",
        default="10",
        help="how often request counters are sent to the telemetry endpoint "
        "(default %(default)s)",
    )
    add("--cluster-cert", metavar="FILE", help="client certificate (PEM)")
    add("--cluster-cert-key", metavar="FILE", help="client certificate key (PEM)")
    add(
        "--cluster-ca-cert",
        metavar="FILE",
        help="CA bundle that verifies the control plane (PEM)",
    )
    add(
        "--cluster-ping-interval",
        metavar="SECONDS",
        default="20",
        help="ping the control plane this often; a control plane silent for as "
        "long again is taken for gone and dialled anew (default %(default)s)",
    )
    add(
        "--cluster-max-payload",
        metavar="BYTES",
        default=str(MAX_FRAME_SIZE),
        help="largest config frame accepted from the control plane, compressed "
        "(default %(default)s)",
    )
    add(
        "--proxy-listen",
        metavar="HOST:PORT",
        default="0.0.0.0:8000",
        help="address of the HTTP proxy (default %(default)s)",
    )
    add(
        "--status-listen",
        metavar="HOST:PORT",
        default="127.0.0.1:8100",
        help="address of the status API (default %(default)s)",
    )
    add(
        "--workers",
        metavar="N",
        default="1",
        help="proxy worker processes sharing the proxy port (SO_REUSEPORT), "
        "or 'auto' for one per CPU; the node keeps one control plane "
        "connection and one status API for all of them and restarts a "
        "worker that dies; 1 serves from the node's own process "
        "(default %(default)s)",
    )
    add(
        "--prefix",
        metavar="DIR",
        default="var/dp",
        help="working directory; keeps the node id and the last config applied "
        "across restarts (default %(default)s)",
    )
    add(
        "--declarative-config",
        metavar="FILE",
        help="serve this JSON or YAML file (Kong's declarative format) instead "
        "of a control plane; SIGHUP reloads it",
    )
    add(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="default %(default)s",
    )
    add(
        "--node-labels",
        metavar="K:V,...",
        default="",
        help="labels reported to the control plane, for example env:prod,zone:a",
    )
    add(
        "--plugins",
        metavar="NAME,...",
        default="bundled",
        help=(
            "plugins this node offers to the control plane, which pushes no "
            "config that uses others (Kong's `plugins` setting); default "
            "%(default)s: every plugin the node has"
        ),
    )
    return parser


def _apply_environment(
    parser: argparse.ArgumentParser, environ: Mapping[str, str]
) -> None:
    """Make `PORTICO_<OPTION>` the default of each option."""
    defaults: dict[str, str] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = environ.get("PORTICO_" + action.dest.upper())
        if value is not None:
            defaults[action.dest] = value
    parser.set_defaults(**defaults)


def parse_labels(text: str) -> dict[str, str]:
    """Parse `k:v,k2:v2` into a mapping or raise ValidationError."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValidationError(f"--node-labels entries must be k:v, got {item!r}")
        labels[key] = value
    return labels


def _seconds(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 3600:
        raise ValidationError(f"{option} must be 0.1 to 3600 seconds, got {text!r}")
    return value


def _bytes(option: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1024:
        raise ValidationError(f"{option} must be at least 1024 bytes, got {text!r}")
    return int(text)


def _workers(text: str) -> int:
    if text == "auto":
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValidationError(
            f"--workers must be 1 to {MAX_WORKERS} or auto, got {text!r}"
        )
    return int(text)


def _plugins(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["bundled"]:
        return ()
    unknown = sorted(set(names) - set(FACTORIES))
    if unknown or not names:
        raise ValidationError(
            f"--plugins must be bundled or names among {', '.join(sorted(FACTORIES))}"
            f", got {text!r}"
        )
    return tuple(sorted(set(names)))


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from arguments and environment; ValidationError if invalid."""
    parser = build_parser()
    _apply_environment(parser, os.environ if environ is None else environ)
    args = parser.parse_args(argv)
    if args.log_level not in LOG_LEVELS:
        raise ValidationError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if args.cluster_control_plane and args.declarative_config:
        raise ValidationError(
            "--cluster-control-plane and --declarative-config exclude each other"
        )
    return Settings(
        cluster_control_plane=args.cluster_control_plane or None,
        cluster_telemetry_endpoint=args.cluster_telemetry_endpoint or None,
        cluster_telemetry_interval=_seconds(
            "--cluster-telemetry-interval", args.cluster_telemetry_interval
        ),
        cluster_cert=_path(args.cluster_cert),
        cluster_cert_key=_path(args.cluster_cert_key),
        cluster_ca_cert=_path(args.cluster_ca_cert),
        cluster_ping_interval=_seconds(
            "--cluster-ping-interval", args.cluster_ping_interval
        ),
        cluster_max_payload=_bytes("--cluster-max-payload", args.cluster_max_payload),
        proxy_listen=Address.parse(args.proxy_listen, option="--proxy-listen"),
        status_listen=Address.parse(args.status_listen, option="--status-listen"),
        prefix=Path(args.prefix),
        declarative_config=_path(args.declarative_config),
        log_level=args.log_level,
        node_labels=parse_labels(args.node_labels),
        workers=_workers(args.workers),
        plugins=_plugins(args.plugins),
    )
