"""Make and inspect the certificates of the cluster channel.

The control plane serves its cluster and telemetry listeners with a server
certificate, supplied by the operator or generated into the prefix at first
start. Data plane nodes present client certificates that are pinned to a
runtime group by their SHA-256 fingerprint, like Konnect's
``pinned_client_certs``; this module generates such pairs too.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import uuid
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.errors import ValidationError

SERVER_CERT_NAME = "cluster.crt"
SERVER_KEY_NAME = "cluster.key"
CERT_LIFETIME = datetime.timedelta(days=3650)


def _subject_names(hostnames: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def _self_signed(
    common_name: str,
    usage: x509.ObjectIdentifier,
    hostnames: Iterable[str] = (),
) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    # Backdate a little so that a node whose clock lags still accepts it.
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
    )
    names = _subject_names(hostnames)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    cert = builder.sign(key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def generate_client_certificate(common_name: str) -> tuple[str, str]:
    """Return a new self-signed client certificate and its key, both PEM.

    The key is EC P-256 and the certificate is valid for ten years, like the
    ones Konnect generates; the caller shows the key once and keeps only the
    certificate.
    """
    if not common_name or len(common_name) > 64:
        raise ValidationError("common name must be 1 to 64 characters")
    return _self_signed(common_name, ExtendedKeyUsageOID.CLIENT_AUTH)


def fingerprint(cert_pem: str | bytes) -> str:
    """Return the lowercase hex SHA-256 of a PEM certificate's DER form."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValidationError("not a PEM encoded X.509 certificate") from None
    return der_fingerprint(cert.public_bytes(serialization.Encoding.DER))


def der_fingerprint(der: bytes) -> str:
    """Return the lowercase hex SHA-256 of a DER certificate."""
    return hashlib.sha256(der).hexdigest()


def ensure_server_certificate(prefix: Path, hostnames: list[str]) -> tuple[Path, Path]:
    """Return the prefix's server certificate and key, generating them once.

    The key file is created with mode 0600. An existing pair is reused as is,
    even if `hostnames` changed since; delete both files to make a new one.
    """
    cert_path = prefix / SERVER_CERT_NAME
    key_path = prefix / SERVER_KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path

    prefix.mkdir(parents=True, exist_ok=True)
    names = hostnames or ["localhost"]
    cert_pem, key_pem = _self_signed(
        f"portico-cp-{uuid.uuid4().hex[:12]}",
        ExtendedKeyUsageOID.SERVER_AUTH,
        names,
    )
    # Write the key through a descriptor opened 0600 so that it is never
    # readable by others, not even for an instant.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as key_file:
        key_file.write(key_pem)
    os.chmod(key_path, 0o600)
    cert_path.write_text(cert_pem)
    return cert_path, key_path


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """Return a server context that asks for (and checks) client certificates.

    Python's ssl accepts a client certificate only when it chains to a loaded
    verify location, so callers add each pinned certificate with
    :func:`trust_certificate`. Partial chains are allowed so that a pinned
    leaf suffices even when a CA issued it. The certificate being pinned to
    the right runtime group is checked by the caller after the handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def trust_certificate(context: ssl.SSLContext, cert_pem: str) -> None:
    """Let the handshake of `context` accept a client presenting `cert_pem`."""
    context.load_verify_locations(cadata=cert_pem)
