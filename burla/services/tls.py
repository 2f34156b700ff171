"""main_service's own TLS certificate: made once on its machine, its key never leaving it.

A deployed cluster's main_service answers clients across the internet. No certificate
authority knows its address, so it makes a self-signed certificate and clients pin its
SHA-256 fingerprint (burla.client.pinning). The key is written once, readable by root
only, and kept: the fingerprint in every client's settings stays good across restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from burla.client.pinning import fingerprint_of
from burla.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from cryptography.x509 import GeneralName

KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
VALID_DAYS = 3650


@dataclass(frozen=True)
class ServerCertificate:
    key_path: Path
    cert_path: Path
    fingerprint: str
    """SHA-256 of the certificate's DER bytes, as clients pin it."""


def ensure_certificate(directory: Path, names: Sequence[str] = ()) -> ServerCertificate:
    """The certificate in `directory`, made (with its key) if there is none. `names` are
    the addresses or host names it is made for; a kept certificate is not remade."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if not cert_path.exists():
        if key_path.exists():
            raise InvalidRequestError(
                f"{key_path} exists without {cert_path}: remove the key to make a new "
                "certificate (clients must then log in again)"
            )
        _make(directory, names)
    return ServerCertificate(key_path, cert_path, certificate_fingerprint(cert_path))


def certificate_fingerprint(cert_path: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return fingerprint_of(certificate.public_bytes(Encoding.DER))


def _make(directory: Path, names: Sequence[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "burla main_service")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
        )
    certificate = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(directory / KEY_FILE, key_bytes, 0o600)
    _write_new(directory / CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _general_name(name: str) -> GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet, with `mode` from its creation on."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        file.write(data)
