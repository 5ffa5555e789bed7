"""Property-based requests against every endpoint of the admin API's document.

Schemathesis generates requests, valid and invalid, from the control plane's
own OpenAPI document and fails on any 5xx answer. Path parameters are pinned
to groups and entities that exist, so that generated bodies reach the
validation and store code instead of ending at a 404. The run is bounded (a
fixed seed, a few examples per operation) so that it fits in the test suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.control_plane.conftest import create_composite, create_group, entities
from tests.support.processes import ControlPlaneProcess, start_control_plane

SEED = "20261204"
EXAMPLES = "8"


def seed_entities(api: httpx.Client) -> dict[str, list[str]]:
    """Create the groups and entities generated requests address."""
    standard, member = create_group(api), create_group(api)
    composite = create_composite(api, member)
    base = entities(standard)
    for path, body in (
        ("services", {"name": "svc", "url": "http://up"}),
        ("services/svc/routes", {"name": "rt", "paths": ["/r"]}),
        ("consumers", {"username": "alice"}),
        ("consumers/alice/key-auth", {"key": "alice-key"}),
        ("consumers/alice/basic-auth", {"username": "alice", "password": "pw"}),
    ):
        response = api.post(f"{base}/{path}", json=body)
        assert response.status_code == 201, response.text
    return {
        "group_id": [standard["id"], composite["id"], member["id"]],
        "parent_key": ["svc", "rt", "alice"],
        "key": ["svc", "rt", "alice", "alice-key", "nope"],
    }


def pin_parameters(
    document: dict[str, Any], values: dict[str, list[str]]
) -> dict[str, Any]:
    """Return `document` with path parameters limited to existing values."""
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", ()):
                known = values.get(parameter["name"])
                if parameter["in"] == "path" and known is not None:
                    parameter["schema"] = {"type": "string", "enum": known}
    return document


@pytest.mark.slow
def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    with start_control_plane(tmp_path) as cp:
        with httpx.Client(base_url=cp.admin_url, headers=cp.headers) as api:
            values = seed_entities(api)
            document = api.get("/openapi.json").json()
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(pin_parameters(document, values)))
        result = run_schemathesis(cp, schema)
        log = cp.output()
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated is not None, summary
    assert int(generated.group(1)) >= 1000, summary
    assert "Traceback" not in log, log[-3000:]


def run_schemathesis(
    cp: ControlPlaneProcess, schema: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(schema),
            "--url",
            cp.admin_url,
            "--header",
            f"Authorization: Bearer {cp.token}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "fuzzing",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
        ],
        # Schemathesis keeps its cache in the working directory.
        cwd=schema.parent,
        capture_output=True,
        text=True,
        timeout=deadline(180),
    )
