"""Run the composite runtime group walkthrough against a local control plane.

Expects `make up` to be running. Creates SRG1, SRG2 and the composite CRG,
starts a data plane node for CRG, then makes each change of the walkthrough and
prints how long it took to reach the data plane node.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import dp
from admin_client import DEFAULT_ADMIN_URL, AdminClient, AdminError, read_token


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the composite walkthrough.")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("PORTICO_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="control plane admin API (env PORTICO_ADMIN_URL)",
    )
    parser.add_argument(
        "--echo-url",
        default=os.environ.get("PORTICO_ECHO_URL", "http://127.0.0.1:8080"),
        help="the echo upstream (env PORTICO_ECHO_URL)",
    )
    parser.add_argument("--proxy-listen", default="127.0.0.1:8000")
    parser.add_argument("--status-listen", default="127.0.0.1:8100")
    return parser.parse_args()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def wait_for(what: str, check: Callable[[], bool], started: float) -> None:
    """Poll `check` until it holds; print how long the change took to arrive."""
    deadline = started + 15
    while time.monotonic() < deadline:
        if check():
            print(f"   ✓ {what} after {(time.monotonic() - started) * 1000:.0f} ms")
            return
        time.sleep(0.005)
    raise SystemExit(f"   ✗ {what}: not seen within 15 s")


def step(text: str) -> None:
    print(f"\n→ {text}", flush=True)


def main() -> None:
    args = parse_args()
    client = AdminClient(args.admin_url, read_token())
    url = f"http://{args.proxy_listen}/mock/request/hello"

    step("create standard runtime groups SRG1 and SRG2, and composite CRG")
    srg1 = client.ensure_group("SRG1", "CLUSTER_TYPE_HYBRID")
    srg2 = client.ensure_group("SRG2", "CLUSTER_TYPE_HYBRID")
    crg = client.ensure_group("CRG", "CLUSTER_TYPE_COMPOSITE")
    client.request(
        "PUT",
        f"/v2/runtime-groups/{crg['id']}/composite-memberships",
        {"members": [{"id": srg1["id"]}, {"id": srg2["id"]}]},
    )
    print(f"   CRG {crg['id']} has members SRG1 and SRG2")

    step("start a data plane node for CRG")
    namespace = argparse.Namespace(
        group="CRG",
        admin_url=args.admin_url,
        proxy_listen=args.proxy_listen,
        status_listen=args.status_listen,
        prefix=None,
    )
    node = subprocess.Popen(dp.command_for(namespace))
    try:
        status_url = f"http://{args.status_listen}/status/ready"
        wait_for(
            "data plane node ready", lambda: get(status_url)[0] == 200, time.monotonic()
        )
        run_walkthrough(client, srg1["id"], srg2["id"], args.echo_url, url)
        print("\nThe walkthrough ran end to end. The node keeps running until Ctrl-C.")
        node.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=15)


def run_walkthrough(
    client: AdminClient, srg1: str, srg2: str, echo_url: str, url: str
) -> None:
    entities = "/v2/runtime-groups/{}/core-entities"

    step("in SRG1: service example_service → the echo upstream, route /mock")
    for path in (f"{entities.format(srg1)}/services/example_service",):
        client.request("PUT", path, {"url": echo_url})
    started = time.monotonic()
    client.request(
        "PUT",
        f"{entities.format(srg1)}/services/example_service/routes/mock",
        {"paths": ["/mock"]},
    )
    wait_for(f"GET {url} answers 200", lambda: get(url)[0] == 200, started)

    step("in SRG2: enable basic-auth globally")
    started = time.monotonic()
    try:
        client.request(
            "POST", f"{entities.format(srg2)}/plugins", {"name": "basic-auth"}
        )
    except AdminError as error:
        if error.status != 409:
            raise
    wait_for("the same route answers 401", lambda: get(url)[0] == 401, started)
    print(f"   body: {get(url)[1].decode()}")

    step("in SRG2: consumer demo-user with a basic-auth credential")
    client.request("PUT", f"{entities.format(srg2)}/consumers/demo-user", {})
    try:
        client.request(
            "POST",
            f"{entities.format(srg2)}/consumers/demo-user/basic-auth",
            {"username": "demo-user", "password": "demo-password"},
        )
    except AdminError as error:
        if error.status != 409:
            raise
    started = time.monotonic()
    auth = "Basic " + base64.b64encode(b"demo-user:demo-password").decode()
    wait_for(
        "the route answers 200 with credentials",
        lambda: get(url, {"Authorization": auth})[0] == 200,
        started,
    )
    body = get(url, {"Authorization": auth})[1].decode()
    seen = "x-consumer-username" in body.lower()
    print(f"   the upstream sees X-Consumer-Username: {'yes' if seen else 'no'}")


if __name__ == "__main__":
    main()
