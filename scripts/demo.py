"""Run the composite runtime group walkthrough against a local control plane.

Expects `make up` to be running. Creates (or reuses) SRG1, SRG2 and the
composite CRG, starts a data plane node for CRG (or uses the one `make dp
GROUP=CRG` runs), then makes each change of the walkthrough and prints how
long it took to reach the node: as the proxy first shows it, and as the
control plane measured it (commit to the node's applied message).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import dp
from admin_client import (
    DEFAULT_ADMIN_URL,
    ROOT,
    AdminClient,
    AdminError,
    read_token,
)

USER, PASSWORD = "demo-user", "demo-password"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the options from the command line and PORTICO_<OPTION>."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo.py",
        description=(
            "`make demo` runs this: the composite runtime group walkthrough "
            "against the control "
            "plane `make up` runs, printing each propagation. Every option can "
            "also be set as PORTICO_<OPTION>, e.g. PORTICO_ADMIN_URL."
        ),
    )
    for name, default, help in (
        ("admin-url", DEFAULT_ADMIN_URL, "control plane admin API"),
        ("echo-url", "http://127.0.0.1:8080", "the echo upstream"),
        ("proxy-listen", "127.0.0.1:8000", "address of the node's proxy"),
        ("status-listen", "127.0.0.1:8100", "address of the node's status API"),
    ):
        env = "PORTICO_" + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}",
            default=os.environ.get(env, default),
            help=f"{help} (env {env}, default {default})",
        )
    return parser.parse_args(argv)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Return the status and body of a GET; status 0 if nothing answered."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def step(text: str) -> None:
    print(f"\n→ {text}", flush=True)


class Demo:
    """The walkthrough's admin client, node and measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client = AdminClient(args.admin_url, read_token())
        self.proxy = f"http://{args.proxy_listen}"
        self.status = f"http://{args.status_listen}/status"
        self.groups: dict[str, dict[str, Any]] = {}
        self.node_id = ""

    def entities(self, name: str) -> str:
        return f"/v2/runtime-groups/{self.groups[name]['id']}/core-entities"

    def node_status(self) -> dict[str, Any] | None:
        status, body = get(self.status)
        return dict(json.loads(body)) if status == 200 else None

    def wait_for(self, what: str, check: Callable[[], bool], started: float) -> None:
        """Poll `check` until it holds; print how long the change took to arrive."""
        deadline = started + 15
        while time.monotonic() < deadline:
            if check():
                elapsed = (time.monotonic() - started) * 1000
                print(
                    f"   ✓ {what}: seen on the proxy {elapsed:.0f} ms after the write"
                )
                self.report_lag()
                return
            time.sleep(0.002)
        raise SystemExit(f"   ✗ {what}: not seen within 15 s")

    def report_lag(self) -> None:
        """Print the lag the control plane measured for the node's version."""
        crg = self.groups["CRG"]["id"]
        path = f"/v2/runtime-groups/{crg}/nodes/{self.node_id}"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                node = self.client.request("GET", path)["item"]
            except AdminError:
                node = None
            if node and node["config_version"] is not None:
                lag = node["lag_ms"]
                shown = "unknown" if lag is None else f"{lag:.1f} ms"
                print(
                    f"     control plane: version {node['config_version']} applied "
                    f"by the node {shown} after its commit ({node['sync_state']})"
                )
                return
            time.sleep(0.05)

    def create_groups(self) -> None:
        step("create standard runtime groups SRG1 and SRG2, and composite CRG")
        for name, kind in (
            ("SRG1", "CLUSTER_TYPE_HYBRID"),
            ("SRG2", "CLUSTER_TYPE_HYBRID"),
            ("CRG", "CLUSTER_TYPE_COMPOSITE"),
        ):
            self.groups[name] = self.client.ensure_group(name, kind)
        members = [{"id": self.groups[n]["id"]} for n in ("SRG1", "SRG2")]
        self.client.request(
            "PUT",
            f"/v2/runtime-groups/{self.groups['CRG']['id']}/composite-memberships",
            {"members": members},
        )
        print(f"   CRG {self.groups['CRG']['id']} has members SRG1 and SRG2")
        status = self.client.request(
            "GET", f"/v2/runtime-groups/{self.groups['CRG']['id']}/composite-status"
        )
        if status["conflicts"]:
            conflicts = "\n".join(f"     {c}" for c in status["conflicts"])
            raise SystemExit(
                "portico: CRG's members conflict, so its nodes keep their last "
                f"config; remove one side of each conflict first:\n{conflicts}"
            )

        # A walkthrough that ran before left basic-auth on: start without it.
        for name in ("SRG1", "SRG2"):
            path = self.entities(name) + "/plugins"
            for plugin in self.client.request("GET", path)["data"]:
                scoped = plugin["route"] or plugin["service"] or plugin["consumer"]
                if plugin["name"] == "basic-auth" and not scoped:
                    self.client.request("DELETE", f"{path}/{plugin['id']}")
                    print(f"   removed the global basic-auth left in {name}")

    def attach_node(self) -> subprocess.Popen[bytes] | None:
        """Start a node for CRG, or use the one already running; return ours."""
        step("attach a data plane node to CRG")
        crg = self.groups["CRG"]["id"]
        running = self.node_status()
        if running is not None:
            group = running["config"]["group_id"]
            if group is not None and group != crg:
                raise SystemExit(
                    f"portico: a data plane node of another runtime group already "
                    f"answers on {self.args.status_listen}; stop it, or run the "
                    "demo with --proxy-listen and --status-listen elsewhere"
                )
            self.node_id = running["node_id"]
            print(f"   using node {self.node_id}, already running for CRG")
            return None

        namespace = argparse.Namespace(
            group="CRG",
            admin_url=self.args.admin_url,
            proxy_listen=self.args.proxy_listen,
            status_listen=self.args.status_listen,
            prefix=None,
        )
        node = subprocess.Popen(dp.command_for(namespace), cwd=ROOT)
        started = time.monotonic()
        while time.monotonic() < started + 15:
            if node.poll() is not None:
                raise SystemExit(
                    f"portico: the data plane node exited with status "
                    f"{node.returncode}; see its message above"
                )
            status = self.node_status()
            if status is not None and status["config"]["group_id"] == crg:
                self.node_id = status["node_id"]
                elapsed = (time.monotonic() - started) * 1000
                print(
                    f"   ✓ node {self.node_id} got CRG's config after {elapsed:.0f} ms"
                )
                return node
            time.sleep(0.01)
        node.terminate()
        raise SystemExit("portico: the data plane node got no config within 15 s")

    def run(self) -> None:
        url = f"{self.proxy}/mock/request/hello"
        srg1, srg2 = self.entities("SRG1"), self.entities("SRG2")
        echo = self.args.echo_url

        step("in SRG1: service example_service → the echo upstream, route /mock")
        self.client.request("PUT", f"{srg1}/services/example_service", {"url": echo})
        self.client.request(
            "PUT",
            f"{srg1}/services/example_service/routes/mock",
            {"paths": ["/mock"]},
        )
        started = time.monotonic()
        self.wait_for(f"GET {url} answers 200", lambda: get(url)[0] == 200, started)

        step("in SRG2: enable basic-auth for everything (no scope)")
        self.client.request("POST", f"{srg2}/plugins", {"name": "basic-auth"})
        started = time.monotonic()
        self.wait_for(
            "the same request answers 401", lambda: get(url)[0] == 401, started
        )
        print(f"     body: {get(url)[1].decode()}")

        step(f"in SRG2: consumer {USER} with a basic-auth credential")
        self.client.request("PUT", f"{srg2}/consumers/{USER}", {})
        self.client.request(
            "PUT",
            f"{srg2}/consumers/{USER}/basic-auth/{USER}",
            {"password": PASSWORD},
        )
        started = time.monotonic()
        secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        auth = {"Authorization": f"Basic {secret}"}
        self.wait_for(
            "the request with credentials answers 200",
            lambda: get(url, auth)[0] == 200,
            started,
        )
        headers = json.loads(get(url, auth)[1])["headers"]
        seen = headers.get("x-consumer-username")
        print(f"     the upstream sees X-Consumer-Username: {seen}")

        step("in SRG1: a second route /other; SRG2's basic-auth applies to it too")
        self.client.request(
            "PUT",
            f"{srg1}/services/example_service/routes/other",
            {"paths": ["/other"]},
        )
        other = f"{self.proxy}/other/request"
        started = time.monotonic()
        self.wait_for(
            f"GET {other} answers 401, and 200 with credentials",
            lambda: get(other)[0] == 401 and get(other, auth)[0] == 200,
            started,
        )

        print(
            f"\nThe walkthrough ran end to end. Open {url} in a browser (user "
            f"{USER}, password {PASSWORD}) to see the echo as a page."
        )


def main(argv: list[str] | None = None) -> int:
    """Run the walkthrough; keep a node it started running until Ctrl-C."""
    args = parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    demo = Demo(args)
    node: subprocess.Popen[bytes] | None = None
    try:
        demo.create_groups()
        node = demo.attach_node()
        demo.run()
        if node is not None:
            print("The data plane node keeps running until Ctrl-C.", flush=True)
            node.wait()
    except AdminError as error:
        print(f"portico: the admin API refused: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None and node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
