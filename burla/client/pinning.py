"""TLS to a cluster whose main_service shows its own certificate, pinned by fingerprint.

A deployed cluster's main_service makes its certificate itself (burla.services.tls), so
no authority vouches for it; instead clients and nodes are given its SHA-256 fingerprint.
The first connection fetches the certificate and compares fingerprints; every connection
after that is verified against exactly that certificate, so only the holder of its key
(which never leaves main_service's disk) can answer. Standard library only: workers use
this too.
"""

from __future__ import annotations

import functools
import hashlib
import re
import ssl

from burla.core.errors import CertificateError

FINGERPRINT = re.compile(r"[0-9a-f]{64}")
"""A certificate's SHA-256 fingerprint as burla writes it: 64 lowercase hex digits."""
FETCH_TIMEOUT_S = 10.0


def fingerprint_of(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def normalized(fingerprint: str) -> str:
    """A fingerprint as burla writes it, from one with colons, capitals or a sha256: prefix."""
    plain = fingerprint.strip().lower().removeprefix("sha256:").replace(":", "")
    if not FINGERPRINT.fullmatch(plain):
        raise CertificateError(
            f"{fingerprint!r} is not a certificate's SHA-256 fingerprint (64 hex digits); "
            "copy it again from `burla deploy`'s output or a login string"
        )
    return plain


def tls_context(host: str, port: int, fingerprint: str | None) -> ssl.SSLContext:
    """The context for https://host:port: pinned to `fingerprint` when given, else the
    system's certificate authorities (a main_service behind a certificate they sign).
    CertificateError if the server shows another certificate; ConnectionError if its
    certificate cannot be fetched."""
    if fingerprint is None:
        return ssl.create_default_context()
    return _pinned(host, port, normalized(fingerprint))


@functools.cache
def _pinned(host: str, port: int, fingerprint: str) -> ssl.SSLContext:
    try:
        shown = ssl.get_server_certificate((host, port), timeout=FETCH_TIMEOUT_S)
    except OSError as error:  # ssl.SSLError included; callers retry these
        raise ConnectionError(
            f"cannot fetch the certificate of https://{host}:{port}: {error}"
        ) from error
    found = fingerprint_of(ssl.PEM_cert_to_DER_cert(shown))
    if found != fingerprint:
        raise CertificateError(
            f"https://{host}:{port} showed a certificate with SHA-256 fingerprint {found}, "
            f"not {fingerprint}, which your settings pin: it is not your cluster's "
            "main_service, or the cluster's certificate was made anew (then log in again "
            "with a new login string: `burla login ...`). Nothing was sent to it."
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The pinned certificate is the only trust anchor: a name check adds nothing, and the
    # cluster's address may change while its certificate does not.
    context.check_hostname = False
    context.load_verify_locations(cadata=shown)
    return context
