"""main_service's own certificate and the clients that pin it: the right fingerprint gets
an encrypted connection, any other certificate is refused before a byte of the request is
sent, and the key file is the server's alone."""

from __future__ import annotations

import ssl
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from burla.client.http import HttpPool
from burla.client.pinning import normalized, tls_context
from burla.core.errors import CertificateError, InvalidRequestError
from burla.services.tls import ServerCertificate, ensure_certificate


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: list[str]

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        answer = b"secret answer"
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def serve_tls(certificate: ServerCertificate) -> tuple[ThreadingHTTPServer, type[Recorder]]:
    handler = type("Handler", (Recorder,), {"paths": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_path, certificate.key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return ensure_certificate(tmp_path / "tls", ["127.0.0.1"])


@pytest.fixture
def server(certificate: ServerCertificate) -> Iterator[tuple[str, type[Recorder]]]:
    httpd, handler = serve_tls(certificate)
    yield f"https://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_the_key_is_the_servers_alone_and_kept(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path / "tls", ["127.0.0.1", "main.example"])
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    again = ensure_certificate(tmp_path / "tls", ["10.0.0.9"])
    assert again == first  # made once: pinned fingerprints stay good


def test_a_key_without_its_certificate_is_not_silently_replaced(tmp_path: Path) -> None:
    made = ensure_certificate(tmp_path / "tls")
    made.cert_path.unlink()
    with pytest.raises(InvalidRequestError, match="remove the key"):
        ensure_certificate(tmp_path / "tls")


def test_the_pinned_certificate_gets_an_encrypted_answer(
    server: tuple[str, type[Recorder]], certificate: ServerCertificate
) -> None:
    url, handler = server
    pool = HttpPool(url, {}, timeout_s=10, cert_sha256=certificate.fingerprint)
    try:
        assert pool.request("GET", "/jobs").content == b"secret answer"
        assert pool.request("GET", "/again").content == b"secret answer"
    finally:
        pool.close()
    assert handler.paths == ["/jobs", "/again"]


def test_another_certificate_is_refused_before_the_request_is_sent(
    server: tuple[str, type[Recorder]], tmp_path: Path
) -> None:
    url, handler = server
    other = ensure_certificate(tmp_path / "other", ["127.0.0.1"])
    pool = HttpPool(url, {"authorization": "Bearer t"}, timeout_s=10, cert_sha256=other.fingerprint)
    with pytest.raises(CertificateError) as refused:
        pool.request("GET", "/jobs")
    assert other.fingerprint in str(refused.value)
    assert "Nothing was sent" in str(refused.value)
    assert handler.paths == []


def test_without_a_pin_a_self_made_certificate_is_not_trusted(
    server: tuple[str, type[Recorder]],
) -> None:
    url, handler = server
    pool = HttpPool(url, {}, timeout_s=10)
    with pytest.raises(CertificateError, match="does not trust"):
        pool.request("GET", "/jobs")
    assert handler.paths == []


def test_services_pin_the_same_way_through_httpx(
    server: tuple[str, type[Recorder]], certificate: ServerCertificate
) -> None:
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    context = tls_context("127.0.0.1", port, certificate.fingerprint)
    assert httpx.get(url + "/x", verify=context, trust_env=False).text == "secret answer"


@pytest.mark.parametrize(
    "written",
    [
        "AB:" * 31 + "AB",
        "sha256:" + "ab" * 32,
        "  " + "AB" * 32 + "\n",
    ],
)
def test_fingerprints_are_read_in_the_forms_tools_print(written: str) -> None:
    assert normalized(written) == "ab" * 32


def test_a_fingerprint_that_is_not_one_is_refused() -> None:
    with pytest.raises(CertificateError, match="64 hex digits"):
        normalized("abc")
