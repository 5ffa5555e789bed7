"""Measure the control plane's admin writes and its composite rebuild.

Run from the checkout's root::

    python -m bench.cp_writes [--quick] [--writes N]

It starts a control plane on free ports in a temporary directory and prints
one JSON line per figure:

- ``cp_writes_sequential``: entity writes per second (POST of a consumer)
  from one client, each waiting for the previous answer;
- ``cp_writes_concurrent``: the same with 8 concurrent clients;
- ``cp_composite_rebuild``: through the store, the time of one member write
  (validation, commit, rebuild and conflict check) in a composite of 10
  members x 1,000 entities.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from control_plane import editor
from control_plane.config_cache import now_iso
from control_plane.group_state import GroupState
from control_plane.store.base import EditResult
from control_plane.store.sqlite import SqliteStore
from shared.schema import validate_entity
from tests.support.processes import start_control_plane

CLIENTS = 8


def _writes(admin: str, token: str, base: str, names: list[str]) -> None:
    # http.client keeps the client's own cost per request small, so the figure
    # is mostly the control plane's.
    host, port = admin.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        for name in names:
            body = json.dumps({"username": name})
            connection.request("POST", f"{base}/consumers", body, headers)
            response = connection.getresponse()
            text = response.read()
            if response.status != 201:
                raise RuntimeError(f"write refused: {response.status} {text!r}")
    finally:
        connection.close()


def _measure(admin_url: str, token: str, writes: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    runs = (("cp_writes_sequential", 1), ("cp_writes_concurrent", CLIENTS))
    for name, clients in runs:
        group = httpx.post(
            f"{admin_url}/v2/runtime-groups", json={"name": name}, headers=headers
        ).json()
        base = f"/v2/runtime-groups/{group['id']}/core-entities"
        batches = [
            [f"user-{c}-{i}" for i in range(writes // clients)] for c in range(clients)
        ]
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for future in [
                pool.submit(_writes, admin_url, token, base, b) for b in batches
            ]:
                future.result()
        elapsed = time.perf_counter() - started
        done = sum(len(b) for b in batches)
        results.append(
            {
                "name": name,
                "per_s": round(done / elapsed, 1),
                "writes": done,
                "clients": clients,
            }
        )
    return results


def _group(name: str, cluster_type: str = "hybrid") -> dict[str, Any]:
    stamp = now_iso()
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "description": "",
        "labels": {},
        "cluster_type": cluster_type,
        "auth_type": "pinned_client_certs",
        "proxy_urls": [],
        "created_at": stamp,
        "updated_at": stamp,
    }


def _seed(
    rows: list[tuple[str, dict[str, Any]]],
) -> Callable[[GroupState], EditResult[None]]:
    def plan(state: GroupState) -> EditResult[None]:
        return EditResult(None, upserts=rows)

    return plan


async def _composite(
    directory: Path, members: int, entities: int, rounds: int
) -> dict[str, Any]:
    store = SqliteStore(directory / "rebuild.db")
    await store.open()
    try:
        ids = [
            (await store.create_group(_group(f"m{i}")))["id"] for i in range(members)
        ]
        composite = await store.create_group(_group("composite", "composite"))
        await store.change_members(composite["id"], "add", ids)
        template = validate_entity(
            "services", {"url": "http://up:80/x"}, now=1, resolve=lambda *_: None
        )
        for i, member_id in enumerate(ids):
            rows = [
                ("services", dict(template, id=str(uuid.uuid4()), name=f"m{i}-{n}"))
                for n in range(entities)
            ]
            await store.edit(member_id, _seed(rows))

        timings = []
        for n in range(rounds):

            def plan(state: GroupState, n: int = n) -> EditResult[dict[str, Any]]:
                body = {"name": f"extra-{n}", "url": "http://up"}
                return editor.plan_create(state, "services", body, now=int(time.time()))

            started = time.perf_counter()
            await store.edit(ids[n % members], plan)
            timings.append((time.perf_counter() - started) * 1000)
        state = (await store.composite_status(composite["id"])).state
    finally:
        await store.close()
    return {
        "name": "cp_composite_rebuild",
        "ms_p50": round(statistics.median(timings), 2),
        "ms_max": round(max(timings), 2),
        "members": members,
        "entities_per_member": entities,
        "state": state,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.cp_writes")
    parser.add_argument("--quick", action="store_true", help="fewer writes and rounds")
    parser.add_argument("--writes", type=int, default=None, help="writes per run")
    args = parser.parse_args(argv)
    writes = args.writes or (400 if args.quick else 2000)
    rounds = 10 if args.quick else 30
    with tempfile.TemporaryDirectory(prefix="portico-bench-") as tmp:
        with start_control_plane(Path(tmp), log_level="warning") as cp:
            for line in _measure(cp.admin_url, cp.token, writes):
                print(json.dumps(line), flush=True)
        rebuild = asyncio.run(_composite(Path(tmp), 10, 1000, rounds))
        print(json.dumps(rebuild), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
