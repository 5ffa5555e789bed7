"""Pinned data plane client certificates, also allowed on composites."""

from __future__ import annotations

import httpx

from control_plane.pki import generate_client_certificate
from tests.control_plane.conftest import assert_problem, create_composite, create_group


def certs(group_id: str) -> str:
    return f"/v2/runtime-groups/{group_id}/dp-client-certificates"


def test_uploaded_certificate_is_listed_and_fetched(api: httpx.Client) -> None:
    group = create_group(api)
    pem, _ = generate_client_certificate("dp")
    response = api.post(certs(group["id"]), json={"cert": pem, "title": "dp one"})
    assert response.status_code == 201, response.text
    item = response.json()["item"]
    assert set(item) == {"id", "cert", "title", "created_at", "updated_at"}
    listed = api.get(certs(group["id"])).json()
    assert [c["id"] for c in listed["items"]] == [item["id"]]
    fetched = api.get(f"{certs(group['id'])}/{item['id']}").json()["item"]
    assert fetched["title"] == "dp one"


def test_bad_pem_is_refused_naming_cert(api: httpx.Client) -> None:
    group = create_group(api)
    response = api.post(certs(group["id"]), json={"cert": "not a certificate"})
    assert_problem(response, 400, "cert")


def test_composite_accepts_certificates(api: httpx.Client) -> None:
    composite = create_composite(api)
    pem, _ = generate_client_certificate("dp")
    assert api.post(certs(composite["id"]), json={"cert": pem}).status_code == 201


def test_generate_returns_the_key_once(api: httpx.Client) -> None:
    group = create_group(api)
    response = api.post(f"{certs(group['id'])}/generate", json={})
    assert response.status_code == 201, response.text
    assert "PRIVATE KEY" in response.json()["private_key"]
    cert_id = response.json()["item"]["id"]
    assert "private_key" not in api.get(f"{certs(group['id'])}/{cert_id}").text


def test_deleted_certificate_is_gone(api: httpx.Client) -> None:
    group = create_group(api)
    pem, _ = generate_client_certificate("dp")
    item = api.post(certs(group["id"]), json={"cert": pem}).json()["item"]
    assert api.delete(f"{certs(group['id'])}/{item['id']}").status_code == 204
    assert_problem(api.get(f"{certs(group['id'])}/{item['id']}"), 404)
