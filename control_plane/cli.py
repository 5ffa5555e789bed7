"""Client commands that talk to a running control plane's admin API.

`token create|list|revoke` manage admin API tokens; `dp-cert` generates a
data plane client certificate, pins it to a group and writes the files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ClientError(Exception):
    """Raised when the admin API refuses a call or cannot be reached."""


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """Send one admin API request; return the decoded JSON answer."""
    token = args.token or os.environ.get("PORTICO_ADMIN_TOKEN")
    if not token:
        raise ClientError("no token: pass --token or set PORTICO_ADMIN_TOKEN")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        args.admin_url.rstrip("/") + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise ClientError(f"{method} {path}: {exc.code} {detail}") from exc
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach {args.admin_url}: {exc.reason}") from exc
    return json.loads(raw) if raw else None


def _find_group(args: argparse.Namespace, key: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"filter[name][eq]": key})
    found = call(args, "GET", f"/v2/runtime-groups?{query}")["data"]
    if found:
        return dict(found[0])
    try:
        return dict(call(args, "GET", f"/v2/runtime-groups/{urllib.parse.quote(key)}"))
    except ClientError as exc:
        raise ClientError(f"no runtime group named or with id '{key}'") from exc


def _token(args: argparse.Namespace) -> None:
    if args.action == "create":
        body = {
            "name": args.name,
            "role": args.role,
            "groups": args.group,
            "kind": "system" if args.system else "personal",
        }
        created = call(args, "POST", "/v2/tokens", body)
        print(f"id: {created['id']}")
        print(f"token: {created['token']}")
        print("the token is shown only now; store it safely")
    elif args.action == "list":
        for record in call(args, "GET", "/v2/tokens")["data"]:
            groups = ",".join(record["groups"]) or "-"
            print(f"{record['id']}  {record['role']:<20} {groups}  {record['name']}")
    else:
        call(args, "DELETE", f"/v2/tokens/{urllib.parse.quote(args.token_id)}")
        print(f"revoked {args.token_id}")


def _dp_cert(args: argparse.Namespace) -> None:
    group = _find_group(args, args.group)
    path = f"/v2/runtime-groups/{group['id']}/dp-client-certificates/generate"
    created = call(args, "POST", path, {})
    args.out.mkdir(parents=True, exist_ok=True)
    cert_path = args.out / "cluster.crt"
    key_path = args.out / "cluster.key"
    cert_path.write_text(created["item"]["cert"])
    # The key is written readable by its owner only.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(created["private_key"])
    print(
        f"certificate {created['item']['id']} pinned to runtime group {group['name']}"
    )
    print(f"wrote {cert_path} and {key_path}")
    endpoints = group["config"]
    print(f"control plane endpoint: {endpoints['control_plane_endpoint']}")
    print(f"telemetry endpoint: {endpoints['telemetry_endpoint']}")
    print(
        "start a node with: python -m data_plane "
        f"--cluster-control-plane {endpoints['control_plane_endpoint']} "
        f"--cluster-telemetry-endpoint {endpoints['telemetry_endpoint']} "
        f"--cluster-cert {cert_path} --cluster-cert-key {key_path}"
    )


def run(args: argparse.Namespace) -> int:
    """Run a client command; return the exit status."""
    try:
        if args.command == "token":
            _token(args)
        else:
            _dp_cert(args)
    except ClientError as exc:
        print(f"portico: {exc}", file=sys.stderr)
        return 1
    return 0
