"""The browser UI: its files, how they are served, and the API paths it calls."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from support.processes import ControlPlaneProcess, start_control_plane

from control_plane.ui import CONTENT_TYPES, STATIC, ui_routes
from tests.conftest import SPECS, deadline

JS = STATIC / "js"

# An endpoint of the UI's table: `name: ["METHOD", "/path/{param}"],`, possibly
# spread over several lines by the formatter.
ENDPOINT = re.compile(r'(\w+):\s*\[\s*"([A-Z]+)",\s*"([^"]+)",?\s*\]')


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """Serve the UI routes alone with uvicorn on a free port; yield a client."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        Starlette(routes=ui_routes()), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(deadline(10)):
        while not server.started:
            if task.done():
                await task  # raises why the server could not start
            await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as test_client:
        yield test_client
    server.should_exit = True
    await task
    sock.close()


def ui_files() -> list[str]:
    return sorted(
        path.relative_to(STATIC).as_posix()
        for path in STATIC.rglob("*")
        if path.is_file()
    )


def endpoint_table(name: str) -> dict[str, tuple[str, str]]:
    """Return the `name` table of api.js as {endpoint: (method, path)}."""
    source = (JS / "api.js").read_text()
    match = re.search(rf"export const {name} = \{{(.*?)\n\}};", source, re.S)
    assert match, f"api.js has no {name} table"
    return {key: (method, path) for key, method, path in ENDPOINT.findall(match[1])}


def shape(path: str) -> str:
    """Return `path` with every parameter written `{}`, to compare templates."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def operations(document: dict[str, Any], prefix: str = "") -> set[tuple[str, str]]:
    return {
        (method.upper(), shape(prefix + path))
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


@pytest.fixture(scope="module")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlPlaneProcess]:
    with start_control_plane(tmp_path_factory.mktemp("ui")) as cp:
        yield cp


def matches(template: str, path: str) -> bool:
    """Return whether the documented `template` covers the UI's `path`.

    A parameter of the document stands for any one segment, so a generic
    `core-entities/{collection}` covers `core-entities/services`.
    """
    documented, called = template.strip("/").split("/"), path.strip("/").split("/")
    return len(documented) == len(called) and all(
        d.startswith("{") or d == c for d, c in zip(documented, called, strict=True)
    )


async def test_the_index_page_is_served_as_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="js/app.js">' in response.text


@pytest.mark.parametrize("name", ui_files())
async def test_every_ui_file_is_served_with_its_content_type(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/ui/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPES[Path(name).suffix]
    assert response.content == (STATIC / name).read_bytes()


async def test_javascript_modules_are_served_as_javascript(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ui/js/app.js")

    assert response.headers["content-type"].startswith("text/javascript")


async def test_the_root_redirects_to_the_ui(client: httpx.AsyncClient) -> None:
    response = await client.get("/", follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


async def test_the_ui_path_without_a_slash_redirects_to_the_ui(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ui", follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


async def test_an_unknown_file_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/missing.js")

    assert response.status_code == 404


async def test_a_path_outside_the_ui_directory_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ui/..%2f__init__.py")

    assert response.status_code == 404


async def test_pages_run_only_their_own_scripts(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_unchanged_file_answers_not_modified(
    client: httpx.AsyncClient,
) -> None:
    etag = (await client.get("/ui/style.css")).headers["etag"]

    response = await client.get("/ui/style.css", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""


def test_every_file_the_page_and_its_modules_load_exists() -> None:
    index = (STATIC / "index.html").read_text()
    wanted = {
        (STATIC / name).resolve()
        for name in re.findall(r'(?:src|href)="([^"#:]+)"', index)
    }
    for module in JS.glob("*.js"):
        for name in re.findall(r'from "(\./[^"]+)"', module.read_text()):
            wanted.add((module.parent / name).resolve())

    missing = sorted(str(path) for path in wanted if not path.is_file())
    assert not missing


@pytest.mark.parametrize("name", sorted(path.name for path in JS.glob("*.js")))
def test_every_module_parses_as_a_javascript_module(name: str) -> None:
    # Node.js is part of the machine the project runs on; it only parses here.
    node = shutil.which("node")
    assert node, "node is needed to check the UI's JavaScript"

    result = subprocess.run(
        [node, "--input-type=module", "--check"],
        input=(JS / name).read_bytes(),
        capture_output=True,
        timeout=deadline(30),
    )

    assert result.returncode == 0, result.stderr.decode()


def test_only_the_api_module_talks_to_the_api() -> None:
    for module in JS.glob("*.js"):
        if module.name == "api.js":
            continue
        source = module.read_text()
        assert "fetch(" not in source, module.name
        assert '"/v2/' not in source and "`/v2/" not in source, module.name


def test_every_endpoint_the_modules_name_is_in_the_api_table() -> None:
    named: set[str] = set()
    for module in JS.glob("*.js"):
        source = module.read_text()
        named |= set(re.findall(r'(?:call|listAll\w+|hasEndpoint)\(\s*"(\w+)"', source))
        for group in re.findall(r"endpoints: \[([^\]]*)\]", source):
            named |= set(re.findall(r'"(\w+)"', group))
    table = endpoint_table("ENDPOINTS") | endpoint_table("OPTIONAL_ENDPOINTS")

    assert len(named) > 30
    assert sorted(named - table.keys()) == []


def test_every_path_the_ui_calls_is_one_konnect_documents() -> None:
    runtime_groups = yaml.safe_load(
        (SPECS / "konnect-runtime-groups-v2.yaml").read_text()
    )
    config_2023 = yaml.safe_load(
        (SPECS / "konnect-runtime-groups-config-2023-09.yaml").read_text()
    )
    config_v2 = yaml.safe_load(
        (SPECS / "konnect-control-planes-config-v2.yaml").read_text()
    )
    # The later spec documents consumer credentials under the renamed path
    # family only; Portico serves both families over one model.
    known = (
        operations(runtime_groups, "/v2")
        | operations(config_2023, "/v2")
        | {
            (method, path.replace("/v2/control-planes/", "/v2/runtime-groups/"))
            for method, path in operations(config_v2, "/v2")
        }
    )
    # Portico's own additions, from the control plane's brief.
    portico = {
        ("GET", "/openapi.json"),
        ("POST", "/v2/runtime-groups/{}/dp-client-certificates/generate"),
    }

    called = {
        (method, shape(path)) for method, path in endpoint_table("ENDPOINTS").values()
    }

    assert sorted(called - known - portico) == []


def test_every_path_the_ui_calls_is_in_the_control_planes_openapi_document(
    control_plane: ControlPlaneProcess,
) -> None:
    document = httpx.get(f"{control_plane.admin_url}/openapi.json").json()
    served = operations(document)

    missing = [
        (method, path)
        for method, path in endpoint_table("ENDPOINTS").values()
        if not any(
            method == verb and matches(template, path) for verb, template in served
        )
    ]

    assert missing == []


def test_the_control_plane_serves_the_ui(control_plane: ControlPlaneProcess) -> None:
    root = httpx.get(f"{control_plane.admin_url}/")
    page = httpx.get(f"{control_plane.admin_url}/ui/")

    assert root.status_code == 307
    assert root.headers["location"] == "/ui/"
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
