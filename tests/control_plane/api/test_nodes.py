"""The nodes API reads what the cluster listener records."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from control_plane.store.sqlite import SqliteStore
from tests.control_plane.conftest import assert_problem, create_group
from tests.support.processes import start_control_plane


async def record_nodes(database: Path, group_id: str, count: int) -> list[str]:
    store = SqliteStore(database)
    await store.open()
    ids = sorted(str(uuid.uuid4()) for _ in range(count))
    for node_id in ids:
        node = {
            "id": node_id,
            "hostname": "dp-host",
            "version": "3.9.1",
            "labels": {},
            "last_ping": 1,
            "config_hash": "0" * 32,
            "config_version": 1,
            "sync_state": "in_sync",
            "compatibility_status": None,
            "connected": True,
            "lag_ms": 3,
            "error": None,
        }
        await store.upsert_node(group_id, node)
    await store.close()
    return ids


def test_nodes_are_listed_paged_and_deleted(tmp_path: Path) -> None:
    with start_control_plane(tmp_path, token="kpat_nodes") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            group = create_group(api)
    ids = asyncio.run(record_nodes(cp.prefix / "portico.db", group["id"], 3))
    with start_control_plane(tmp_path, token="kpat_nodes") as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            path = f"/v2/runtime-groups/{group['id']}/nodes"
            first = api.get(path, params={"page[size]": 2}).json()
            assert [n["id"] for n in first["items"]] == ids[:2]
            assert first["page"] == {"total_count": 3, "next": ids[1]}
            rest = api.get(path, params={"page[size]": 2, "page[after]": ids[1]})
            assert [n["id"] for n in rest.json()["items"]] == ids[2:]

            node = api.get(f"{path}/{ids[0]}").json()["item"]
            assert node["connected"] is False  # a restart disconnects every node
            assert (node["sync_state"], node["lag_ms"]) == ("in_sync", 3)

            assert api.delete(f"{path}/{ids[0]}").status_code == 204
            assert_problem(api.get(f"{path}/{ids[0]}"), 404)
