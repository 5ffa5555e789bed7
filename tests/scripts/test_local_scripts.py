"""`make up`, `make dp` and `make demo` as a new user runs them, in a temp var/.

The scripts run as processes on free ports (set through PORTICO_<OPTION>),
with PORTICO_VAR pointing at a temporary directory instead of the checkout's
var/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import deadline
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.slow


@dataclass
class Script:
    """A script running in the background, its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, seconds: float = 30) -> None:
        end = time.monotonic() + deadline(seconds)
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"{text!r} not printed:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """Send SIGTERM and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(deadline(20))
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@dataclass
class Local:
    """The environment of one local installation in a temporary var/."""

    env: dict[str, str]
    tmp_path: Path

    def start(self, script: str, *args: str) -> Script:
        log = self.tmp_path / f"{script}-{time.monotonic_ns()}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, f"scripts/{script}.py", *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Script(process, log)

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, f"scripts/{script}.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=deadline(60),
        )

    def address(self, name: str) -> str:
        return self.env["PORTICO_" + name]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PORTICO_") or key == "PORTICO_TEST_TIMEOUT_SCALE"
    }
    ports = {name: free_port() for name in ("ADMIN", "CLUSTER", "TELEMETRY", "ECHO")}
    env |= {
        "PORTICO_VAR": str(tmp_path / "var"),
        "PORTICO_ADMIN_LISTEN": f"127.0.0.1:{ports['ADMIN']}",
        "PORTICO_CLUSTER_LISTEN": f"127.0.0.1:{ports['CLUSTER']}",
        "PORTICO_CLUSTER_TELEMETRY_LISTEN": f"127.0.0.1:{ports['TELEMETRY']}",
        "PORTICO_ECHO_LISTEN": f"127.0.0.1:{ports['ECHO']}",
        "PORTICO_ADMIN_URL": f"http://127.0.0.1:{ports['ADMIN']}",
        "PORTICO_ECHO_URL": f"http://127.0.0.1:{ports['ECHO']}",
        "PORTICO_PROXY_LISTEN": f"127.0.0.1:{free_port()}",
        "PORTICO_STATUS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    yield Local(env, tmp_path)


def _refused(address: str) -> bool:
    try:
        httpx.get(f"http://{address}/", timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.parametrize("script", ["up", "dp", "demo"])
def test_every_script_documents_its_options_and_variables(
    local: Local, script: str
) -> None:
    result = local.run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert f"make {script}" in result.stdout
    assert "PORTICO_" in result.stdout


def test_the_services_script_documents_itself() -> None:
    result = subprocess.run(
        ["bash", "scripts/services.sh", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(10),
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: scripts/services.sh")


def test_up_dp_and_demo_run_the_walkthrough_and_stop_cleanly(local: Local) -> None:
    up = local.start("up")
    try:
        up.wait_for("Portico is up.")
        token = (local.tmp_path / "var" / "admin-token").read_text().strip()
        assert f"admin token    {token}" in up.output()
        assert "make demo" in up.output() and "make dp GROUP=CRG" in up.output()

        # A second `make up` explains why it cannot start.
        again = local.run("up")
        assert again.returncode == 1
        assert "(admin API)" in again.stderr
        assert "already running" in again.stderr

        # The demo starts its own node and prints each propagation.
        demo = local.start("demo")
        demo.wait_for("The walkthrough ran end to end.")
        output = demo.output()
        assert output.count("✓") == 5, output
        assert 'body: {"message":"Unauthorized"}' in output
        assert "X-Consumer-Username: demo-user" in output
        assert "after its commit (in_sync)" in output
        assert demo.stop() == 0
        assert _refused(local.address("PROXY_LISTEN"))

        # `make dp` reuses the pinned key pair the demo's node was given.
        dp = local.start("dp", "--group", "CRG")
        try:
            dp.wait_for("config applied")
            assert "pinned a new client certificate" not in dp.output()

            # Run again, the demo uses the running node and ends by itself.
            rerun = local.run("demo")
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert "already running for CRG" in rerun.stdout
            assert rerun.stdout.count("✓") == 4
        finally:
            assert dp.stop() == 0
    finally:
        assert up.stop() == 0
    assert _refused(local.address("ADMIN_LISTEN"))
    assert _refused(local.address("ECHO_LISTEN"))

    # A second start reuses var/: same token, same groups.
    up = local.start("up")
    try:
        up.wait_for("Portico is up.")
        groups = httpx.get(
            local.env["PORTICO_ADMIN_URL"] + "/v2/runtime-groups",
            headers={"Authorization": f"Bearer {token}"},
        ).json()["data"]
        assert {g["name"] for g in groups} == {"SRG1", "SRG2", "CRG"}
    finally:
        assert up.stop() == 0


def test_dp_explains_a_member_group_and_an_unknown_one(local: Local) -> None:
    up = local.start("up")
    try:
        up.wait_for("Portico is up.")
        token = (local.tmp_path / "var" / "admin-token").read_text().strip()
        with httpx.Client(
            base_url=local.env["PORTICO_ADMIN_URL"],
            headers={"Authorization": f"Bearer {token}"},
        ) as api:
            ids = {}
            for name, kind in (
                ("A", "CLUSTER_TYPE_HYBRID"),
                ("C", "CLUSTER_TYPE_COMPOSITE"),
            ):
                reply = api.post(
                    "/v2/runtime-groups", json={"name": name, "cluster_type": kind}
                )
                ids[name] = reply.json()["id"]
            reply = api.post(
                f"/v2/runtime-groups/{ids['C']}/composite-memberships/add",
                json={"members": [{"id": ids["A"]}]},
            )
            assert reply.status_code == 204, reply.text

        member = local.run("dp", "--group", "A")
        assert member.returncode == 1
        assert "member of a composite" in member.stderr
        unknown = local.run("dp", "--group", "nowhere")
        assert unknown.returncode == 1
        assert "no runtime group named 'nowhere'" in unknown.stderr
    finally:
        assert up.stop() == 0
