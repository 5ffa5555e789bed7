"""The control plane process: options, start-up errors, tokens, restart, CLI."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
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
        assert group["config"]["control_plane_endpoint"] in result.stdout
        assert group["config"]["telemetry_endpoint"] in result.stdout
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


def test_a_cluster_certificate_that_is_not_pem_fails_before_any_token(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate\n")
    (tmp_path / "bad.key").write_text("not a key\n")
    result = run_cli(
        "--prefix",
        str(tmp_path),
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
        "--cluster-listen",
        f"127.0.0.1:{free_port()}",
        "--cluster-telemetry-listen",
        f"127.0.0.1:{free_port()}",
        "--cluster-cert",
        str(tmp_path / "bad.crt"),
        "--cluster-cert-key",
        str(tmp_path / "bad.key"),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"portico: cannot load the server certificate {tmp_path / 'bad.crt'} "
    )
    # The initial token is shown once; a failed start must not use that up.
    assert "admin token" not in result.stdout


def test_a_busy_cluster_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "--prefix",
            str(tmp_path),
            "--admin-listen",
            f"127.0.0.1:{free_port()}",
            "--cluster-listen",
            f"127.0.0.1:{port}",
            "--cluster-telemetry-listen",
            f"127.0.0.1:{free_port()}",
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"portico: cannot listen on 127.0.0.1:{port} (cluster listener): "
        "address already in use"
    )


def test_help_documents_each_option_with_its_variable() -> None:
    """Every option of the root parser names its PORTICO_ variable in --help."""
    from control_plane.__main__ import parser

    out = " ".join(run_cli("--help").stdout.split())
    options = [
        action.option_strings[0]
        for action in parser()._actions
        if action.option_strings and action.option_strings[0] != "-h"
    ]
    assert "--admin-listen" in options and "--prefix" in options
    for option in options:
        variable = "PORTICO_" + option[2:].upper().replace("-", "_")
        assert option in out and variable in out, option


def test_help_documents_the_token_commands() -> None:
    assert "token" in run_cli("--help").stdout
    out = run_cli("token", "create", "--help").stdout
    for option in ("--name", "--role", "--group", "--system", "--admin-url"):
        assert option in out
    assert "PORTICO_ADMIN_TOKEN" in out
    assert run_cli("token", "revoke", "--help").returncode == 0


def test_public_base_urls_build_the_group_endpoints(tmp_path: Path) -> None:
    with start_control_plane(
        tmp_path,
        cluster_public_url="https://cp.example.test:443",
        telemetry_public_url="https://tp.example.test",
    ) as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            group = create_group(api)
    assert group["config"]["control_plane_endpoint"] == (
        f"https://cp.example.test:443/cp/{group['id']}"
    )
    assert group["config"]["telemetry_endpoint"] == (
        f"https://tp.example.test/tp/{group['id']}"
    )


def database_bytes(prefix: Path) -> bytes:
    """Return the database and its journal files, as stored on disk."""
    return b"".join(p.read_bytes() for p in sorted(prefix.glob("portico.db*")))


def start_without_token(prefix: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    admin = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "PORTICO_ADMIN_TOKEN"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control_plane",
                "--prefix",
                str(prefix),
                "--admin-listen",
                admin,
                "--cluster-listen",
                f"127.0.0.1:{free_port()}",
                "--cluster-telemetry-listen",
                f"127.0.0.1:{free_port()}",
            ],
            cwd=ROOT,
            env=dict(env, PYTHONPATH=str(ROOT)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_healthy(f"http://{admin}", process, 20)
    return process, f"http://{admin}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(deadline(10))


def test_generated_token_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    prefix = tmp_path / "cp"
    process, url = start_without_token(prefix, tmp_path / "first.log")
    stop(process)
    lines = (tmp_path / "first.log").read_text().splitlines()
    token = next(line for line in lines if "admin token" in line).rsplit(" ", 1)[1]
    assert token.startswith("kpat_")
    assert token.encode() not in database_bytes(prefix)

    process, url = start_without_token(prefix, tmp_path / "second.log")
    try:
        assert "admin token" not in (tmp_path / "second.log").read_text()
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/v2/runtime-groups", headers=headers).status_code == 200
    finally:
        stop(process)


def test_initial_token_from_the_environment_is_stored_hashed(tmp_path: Path) -> None:
    secret = "kpat_" + "e" * 40
    with start_control_plane(tmp_path, token=secret) as cp:
        assert "admin token" not in cp.output()
    assert secret.encode() not in database_bytes(cp.prefix)


def test_versions_keep_growing_across_a_restart(tmp_path: Path) -> None:
    def versions(api: httpx.Client, *groups: dict[str, str]) -> list[int]:
        return [
            api.get(f"/v2/runtime-groups/{g['id']}/expected-config-version").json()[
                "expected_config_version"
            ]
            for g in groups
        ]

    def write(api: httpx.Client, group: dict[str, str], name: str) -> None:
        response = api.post(
            f"/v2/runtime-groups/{group['id']}/core-entities/consumers",
            json={"username": name},
        )
        assert response.status_code == 201, response.text

    with start_control_plane(tmp_path, token="kpat_versions") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            member = create_group(api)
            composite = create_group(api, "c", "CLUSTER_TYPE_COMPOSITE")
            api.post(
                f"/v2/runtime-groups/{composite['id']}/composite-memberships/add",
                json={"members": [{"id": member["id"]}]},
            )
            write(api, member, "before")
            before = versions(api, member, composite)
    with start_control_plane(tmp_path, token="kpat_versions") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            assert versions(api, member, composite) == before
            write(api, member, "after")
            assert versions(api, member, composite) == [v + 1 for v in before]


def test_secrets_never_reach_the_log_or_the_database_in_clear(
    tmp_path: Path,
) -> None:
    password = "pw-" + unique("clear")
    with start_control_plane(tmp_path, log_level="debug") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            group = create_group(api)
            base = f"/v2/runtime-groups/{group['id']}/core-entities"
            api.post(f"{base}/consumers", json={"username": "ivy"})
            created = api.post(
                f"{base}/consumers/ivy/basic-auth",
                json={"username": "ivy", "password": password},
            )
            assert created.status_code == 201, created.text
            api.post(
                f"{base}/consumers/ivy/basic-auth",
                data={"username": "ivy2", "password": password},
            )
            api.post(f"{base}/consumers/ivy/basic-auth", json={"password": 5})
            made = api.post("/v2/tokens", json={"name": "logged?"}).json()["token"]
            readable = api.get(f"{base}/basic-auths", params={"size": 1000}).text
        log = cp.output()
    stored = database_bytes(cp.prefix)
    rows = sqlite3.connect(cp.prefix / "portico.db").execute(
        "SELECT body FROM entities WHERE type = 'basicauth_credentials'"
    )
    hashes = [json.loads(body)["password"] for (body,) in rows]
    assert len(hashes) == 2 and all(password not in h for h in hashes)
    assert " DEBUG " in log, "the control plane logged at debug level"
    for secret in (password, made, cp.token, *hashes):
        assert secret not in log
    assert password.encode() not in stored and made.encode() not in stored
    assert not any(h in readable for h in hashes)


def test_token_cli_creates_a_scoped_system_token(tmp_path: Path) -> None:
    with start_control_plane(tmp_path) as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            group = create_group(api)
        created = run_cli(
            "token",
            "create",
            "--name",
            "robot",
            "--system",
            "--role",
            "runtime_group_admin",
            "--group",
            group["name"],
            env={"PORTICO_ADMIN_TOKEN": cp.token, "PORTICO_ADMIN_URL": cp.admin_url},
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.split("token: ")[1].split()[0]
        assert secret.startswith("spat_")
        headers = {"Authorization": f"Bearer {secret}"}
        me = httpx.get(cp.admin_url + "/v2/tokens/current", headers=headers).json()
    assert (me["kind"], me["role"], me["groups"]) == (
        "system",
        "runtime_group_admin",
        [group["id"]],
    )


def test_help_documents_the_cluster_limits() -> None:
    out = run_cli("--help").stdout
    for option in ("cluster-max-payload", "cluster-ping-interval"):
        assert f"--{option}" in out
        assert "PORTICO_" + option.upper().replace("-", "_") in out


def test_bad_cluster_limits_are_one_line_errors(tmp_path: Path) -> None:
    for option, value in (
        ("--cluster-max-payload", "10"),
        ("--cluster-max-payload", "lots"),
        ("--cluster-ping-interval", "0"),
        ("--cluster-ping-interval", "soon"),
    ):
        result = run_cli("--prefix", str(tmp_path), option, value)
        assert result.returncode == 1, (option, value)
        assert result.stderr.strip().count("\n") == 0
        assert option in result.stderr
