"""The control plane process: options, start-up errors, tokens, restart, CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import deadline
from tests.control_plane.conftest import create_group, unique
from tests.support.processes import (
    ROOT,
    free_port,
    spawn_control_plane,
    start_control_plane,
    wait_healthy,
)


def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    full_env.pop("PORTICO_ADMIN_TOKEN", None) if env is None else None
    return subprocess.run(
        [sys.executable, "-m", "control_plane", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=deadline(30),
    )


def test_help_documents_every_option_and_its_variable() -> None:
    out = run_cli("--help").stdout
    for option in (
        "admin-listen",
        "cluster-listen",
        "cluster-telemetry-listen",
        "prefix",
        "database",
        "cluster-public-url",
        "telemetry-public-url",
        "cluster-cert",
        "cluster-cert-key",
        "log-level",
    ):
        assert f"--{option}" in out
        assert "PORTICO_" + option.upper().replace("-", "_") in out


def test_admin_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "--prefix", str(tmp_path), "--admin-listen", f"127.0.0.1:{port}"
        )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "address already in use" in result.stderr


def test_fresh_cp_without_a_token_prints_one_that_works(tmp_path: Path) -> None:
    admin = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if k != "PORTICO_ADMIN_TOKEN"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control_plane",
                "--prefix",
                str(tmp_path / "cp"),
                "--admin-listen",
                admin,
                "--cluster-listen",
                f"127.0.0.1:{free_port()}",
                "--cluster-telemetry-listen",
                f"127.0.0.1:{free_port()}",
            ],
            cwd=ROOT,
            env=dict(env, PYTHONPATH=str(ROOT)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://{admin}", process, 20)
        line = next(
            line for line in log_path.read_text().splitlines() if "admin token" in line
        )
        token = line.rsplit(" ", 1)[1]
        response = httpx.get(
            f"http://{admin}/v2/runtime-groups",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(deadline(10))


def test_options_are_read_from_the_environment(tmp_path: Path) -> None:
    admin = f"127.0.0.1:{free_port()}"
    env = {
        "PORTICO_ADMIN_LISTEN": admin,
        "PORTICO_PREFIX": str(tmp_path / "env"),
        "PORTICO_CLUSTER_LISTEN": f"127.0.0.1:{free_port()}",
        "PORTICO_CLUSTER_TELEMETRY_LISTEN": f"127.0.0.1:{free_port()}",
        "PORTICO_ADMIN_TOKEN": "kpat_fromenvironment",
    }
    process = spawn_control_plane([], env)
    try:
        wait_healthy(f"http://{admin}", process, 20)
        assert (tmp_path / "env" / "portico.db").exists()
    finally:
        process.terminate()
        process.wait(deadline(10))


def test_sigterm_stops_the_process_cleanly(tmp_path: Path) -> None:
    cp = start_control_plane(tmp_path)
    assert cp.stop() == 0


def test_groups_and_versions_survive_a_restart(tmp_path: Path) -> None:
    with start_control_plane(tmp_path, token="kpat_restart") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            group = create_group(api)
            api.post(
                f"/v2/runtime-groups/{group['id']}/core-entities/services",
                json={"name": "kept", "url": "http://up"},
            )
            path = f"/v2/runtime-groups/{group['id']}/expected-config-hash"
            before = api.get(path).json()
    with start_control_plane(tmp_path, token="kpat_restart") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            after = api.get(path).json()
    assert (after["expected_hash"], after["version"]) == (
        before["expected_hash"],
        before["version"],
    )


def test_token_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    with start_control_plane(tmp_path) as cp:
        common = ("--admin-url", cp.admin_url, "--token", cp.token)
        created = run_cli(
            "token", "create", *common, "--name", "ci", "--role", "viewer"
        )
        assert created.returncode == 0, created.stderr
        token_id = created.stdout.split("id: ")[1].split()[0]
        assert token_id in run_cli("token", "list", *common).stdout
        assert run_cli("token", "revoke", *common, token_id).returncode == 0
        assert token_id not in run_cli("token", "list", *common).stdout


def test_dp_cert_cli_writes_a_pinned_certificate_and_key(tmp_path: Path) -> None:
    with start_control_plane(tmp_path) as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            name = unique("dp")
            group = create_group(api, name)
        out = tmp_path / "certs"
        result = run_cli(
            "dp-cert",
            "--admin-url",
            cp.admin_url,
            "--group",
            group["name"],
            "--out",
            str(out),
            env={"PORTICO_ADMIN_TOKEN": cp.token},
        )
        assert result.returncode == 0, result.stderr
        assert "BEGIN CERTIFICATE" in (out / "cluster.crt").read_text()
        assert "PRIVATE KEY" in (out / "cluster.key").read_text()
        assert (out / "cluster.key").stat().st_mode & 0o077 == 0
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            pinned = api.get(
                f"/v2/runtime-groups/{group['id']}/dp-client-certificates"
            ).json()
        assert pinned["items"][0]["cert"] == (out / "cluster.crt").read_text()


def test_unreadable_database_is_a_one_line_error(tmp_path: Path) -> None:
    directory = tmp_path / "not-a-file.db"
    directory.mkdir()
    result = run_cli(
        "--prefix",
        str(tmp_path),
        "--database",
        str(directory),
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "cannot open database" in result.stderr


def test_bad_listen_address_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("--prefix", str(tmp_path), "--admin-listen", "nowhere")
    assert result.returncode == 1
    assert "host:port" in result.stderr
