"""Server and client certificates of the cluster channel."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from control_plane import pki
from shared.errors import ValidationError


def test_a_server_certificate_is_generated_with_a_private_key_file(
    tmp_path: Path,
) -> None:
    cert, key = pki.ensure_server_certificate(tmp_path, ["localhost", "10.0.0.5"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == [
        "10.0.0.5"
    ]


def test_an_existing_server_certificate_is_reused(tmp_path: Path) -> None:
    first = pki.ensure_server_certificate(tmp_path, ["localhost"])
    before = first[0].read_bytes()
    second = pki.ensure_server_certificate(tmp_path, ["other.example"])
    assert second == first
    assert second[0].read_bytes() == before


def test_a_generated_client_certificate_is_p256_and_valid_ten_years() -> None:
    cert_pem, key_pem = pki.generate_client_certificate("dp-node")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days == 3650
    assert cert.subject == cert.issuer
    assert "PRIVATE KEY" in key_pem


def test_two_generated_client_certificates_differ() -> None:
    first, _ = pki.generate_client_certificate("dp")
    second, _ = pki.generate_client_certificate("dp")
    assert pki.fingerprint(first) != pki.fingerprint(second)


def test_the_fingerprint_is_the_sha256_of_the_der_form() -> None:
    cert_pem, _ = pki.generate_client_certificate("dp")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert pki.fingerprint(cert_pem) == cert.fingerprint(hashes.SHA256()).hex()


def test_a_fingerprint_of_garbage_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="PEM"):
        pki.fingerprint("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")


def test_an_empty_common_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="common name"):
        pki.generate_client_certificate("")
