"""The client's HTTP connections to main_service: kept alive, reused, one per caller at once.

A request goes out in one write (head and body together) and its answer is read by
burla.client.http_answer, usually in one receive: every call of remote_parallel_map pays
for at least one request, and a general-purpose client costs a warm call about twice as
much. Safe to share between threads: each request takes an idle connection or opens one.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from burla.client.http_answer import read_answer
from burla.client.pinning import tls_context
from burla.core.errors import CertificateError
from burla.core.trace import mark

IDLE_S = 20.0
"""A connection idle this long is not reused: the server may be closing it (main_service
keeps idle connections longer than this)."""


class HttpError(Exception):
    """The request got no answer: the connection failed or timed out."""


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """By name in lower case."""
    resent: bool = False
    """The request went out twice: the first try's connection broke before an answer
    came, so the server may have carried out both."""

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class HttpPool:
    """Connections to one server, http:// or https:// (pinned to the certificate whose
    SHA-256 fingerprint is `cert_sha256`, see burla.client.pinning)."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout_s: float,
        cert_sha256: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r}")
        self._tls = parts.scheme == "https"
        self._cert_sha256 = cert_sha256
        self._address = (parts.hostname, parts.port or (443 if self._tls else 80))
        host = f"Host: {parts.hostname}:{self._address[1]}\r\n"
        self._head = host + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._timeout_s = timeout_s
        self._idle: list[tuple[socket.socket, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        json_body: Any = None,
        timeout_s: float | None = None,
    ) -> Response:
        target = f"{path}?{urlencode(params)}" if params else path
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if json_body is not None:
            content = json.dumps(json_body).encode()
            head += "Content-Type: application/json\r\n"
        body = content or b""
        message = f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        timeout = self._timeout_s if timeout_s is None else timeout_s
        connection, reused = self._take(timeout)
        try:
            response, keep = self._exchange(connection, method, message)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            # A server that took the request and did not answer in time would only be
            # asked again, and the caller kept waiting twice as long.
            if not reused or isinstance(error, TimeoutError):
                raise HttpError(str(error) or type(error).__name__) from error
            # Most likely the server closed this kept-alive connection before reading the
            # request, so it did nothing with it: send it again on a new connection (and
            # say so: the connection may instead have broken after the request went out).
            connection, _ = self._take(timeout, fresh=True)
            try:
                response, keep = self._exchange(connection, method, message)
            except (OSError, http.client.HTTPException) as again:
                connection.close()
                raise HttpError(str(again) or type(again).__name__) from again
            response = dataclasses.replace(response, resent=True)
        if keep:
            self._give(connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        """Close the idle connections; one in use now is closed when its request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    @staticmethod
    def _exchange(connection: socket.socket, method: str, message: bytes) -> tuple[Response, bool]:
        """Send one request; its response, and whether the connection stays open."""
        mark("client sends")
        connection.sendall(message)
        answer = read_answer(connection, method)
        mark("client has the answer")
        return Response(answer.status, answer.body, answer.headers), answer.keep_alive

    def _take(self, timeout: float, fresh: bool = False) -> tuple[socket.socket, bool]:
        now = time.monotonic()
        with self._lock:
            while self._idle and not fresh:
                connection, since = self._idle.pop()
                if now - since < IDLE_S:
                    connection.settimeout(timeout)
                    return connection, True
                connection.close()
        host, port = self._address
        try:
            # Pinning fetches the certificate once, on a connection of its own: before ours.
            context = tls_context(host, port, self._cert_sha256) if self._tls else None
            connection = socket.create_connection(self._address, timeout=timeout)
        except OSError as error:
            raise HttpError(f"cannot connect to {host}:{port}: {error}") from error
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is None:
            return connection, False
        try:
            return context.wrap_socket(connection, server_hostname=host), False
        except ssl.SSLCertVerificationError as error:
            connection.close()
            raise CertificateError(
                f"https://{host}:{port} showed a certificate this client does not trust "
                f"({error.verify_message}); nothing was sent to it"
            ) from None
        except OSError as error:
            connection.close()
            raise HttpError(f"no TLS session with {host}:{port}: {error}") from error

    def _give(self, connection: socket.socket) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()
