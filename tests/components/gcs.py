"""Cloud Storage for tests: gcp-storage-emulator on a loopback port, and the signature checks
Cloud Storage does that the emulator skips.

`gcs_emulator` (session fixture) starts `gcp-storage-emulator` from this interpreter's venv
in its own process group with an in-memory bucket, and stops it by that group at the end.
It hands out a storage client built with STORAGE_EMULATOR_HOST set (the variable is put
back afterwards: the client keeps its endpoint) and a throwaway service account whose
locally made RSA key signs V4 URLs; nothing ever asks Google for a token.

The emulator serves signed URLs without checking them, so `check_signed_url` does what
Cloud Storage does first: it verifies the V4 signature against the service account's public
key for the method used, and the expiry against a clock tests can move forward.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.cloud.storage import Client  # type: ignore[import-untyped]
from google.oauth2 import service_account

from burla.core.errors import NotFoundError, SignedUrlError

BUCKET = "burla-test"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SERVICE_ACCOUNT = "burla-test-signer@burla-test.iam.gserviceaccount.com"

Method = Literal["GET", "PUT"]


@dataclass(frozen=True)
class GcsEmulator:
    url: str
    bucket: str
    client: Any
    """A google.cloud.storage.Client bound to the emulator."""
    signer: service_account.Credentials
    public_key: rsa.RSAPublicKey


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    if not executable.exists():
        pytest.fail(
            f"{executable} is missing: install the test extras into the venv "
            "(pip install gcp-storage-emulator)"
        )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="burla-gcs-") as workdir:
        log_path = Path(workdir) / "emulator.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    str(executable),
                    "start",
                    "--host=127.0.0.1",
                    f"--port={port}",
                    "--in-memory",
                    f"--default-bucket={BUCKET}",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_until_ready(process, url, log_path)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            yield GcsEmulator(
                url=url,
                bucket=BUCKET,
                client=emulator_client(url),
                signer=_service_account(key),
                public_key=key.public_key(),
            )
        finally:
            _stop(process)


def emulator_client(url: str) -> Any:
    """A storage client that talks to the emulator at `url` without credentials."""
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    try:
        return Client(project="burla-test")
    finally:
        if previous is None:
            del os.environ["STORAGE_EMULATOR_HOST"]
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def check_signed_url(url: str, method: Method, public_key: rsa.RSAPublicKey, now: float) -> None:
    """Raise SignedUrlError unless `url` is a V4 URL signed for `method` and alive at `now`."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    try:
        if len(query) != len(pairs):
            raise ValueError("a query parameter appears twice")
        signature = bytes.fromhex(query.pop("X-Goog-Signature"))
        issued = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        lifetime_s = int(query["X-Goog-Expires"])
        scope = query["X-Goog-Credential"].split("/", 1)[1]
        algorithm, signed_headers = query["X-Goog-Algorithm"], query["X-Goog-SignedHeaders"]
    except (KeyError, ValueError, IndexError) as error:
        raise SignedUrlError(f"{url!r} is not a V4 signed URL ({error!r})") from None
    if (algorithm, signed_headers) != ("GOOG4-RSA-SHA256", "host"):
        raise SignedUrlError(f"{url!r} is signed in a way burla does not use")
    canonical_query = "&".join(
        sorted(f"{quote(name, safe='~')}={quote(value, safe='~')}" for name, value in query.items())
    )
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    string_to_sign = "\n".join(
        [
            algorithm,
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    try:
        public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignedUrlError(
            f"{url!r} does not match its signature for {method}: changed after signing, "
            "signed for another method, or by another key"
        ) from None
    if now >= issued.timestamp() + lifetime_s:
        raise SignedUrlError(f"{url!r} expired {now - issued.timestamp() - lifetime_s:.0f} s ago")


async def transfer_through(
    url: str, method: Method, data: bytes | None, check: Callable[[str, Method], None]
) -> bytes | None:
    """What an HTTP client does with a signed URL, against Cloud Storage's checks (`check`)
    and the emulator's bytes."""
    check(url, method)
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
        response = await http.request(method, url, content=data)
    if response.status_code in (400, 401, 403):
        raise SignedUrlError(f"{method} {url!r} refused: {response.status_code} {response.text}")
    if response.status_code == 404:
        raise NotFoundError(f"{method} {url!r}: no such object")
    response.raise_for_status()
    return response.content if method == "GET" else None


def _service_account(key: rsa.RSAPrivateKey) -> service_account.Credentials:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "project_id": "burla-test",
        "client_email": SERVICE_ACCOUNT,
        "private_key_id": "burla-test-key",
        "private_key": pem.decode(),
        # Signing needs no token; should anything ask for one, it goes nowhere.
        "token_uri": "http://127.0.0.1:9/token",
    }
    signer: service_account.Credentials = (
        service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    )
    return signer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"gcp-storage-emulator exited with {process.returncode} at start:\n"
                f"{log_path.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{url}/", timeout=1, trust_env=False).text == "OK":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(
        f"gcp-storage-emulator did not answer at {url} within {START_TIMEOUT_S} s:\n"
        f"{log_path.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the emulator's process group: SIGTERM, then SIGKILL if it lingers."""
    with suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
