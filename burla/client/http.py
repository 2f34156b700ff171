"""The client's HTTP connections to main_service: kept alive, reused, one per caller at once.

Built on the standard library's http.client, which costs a warm call about half of what a
general-purpose client does; every call of remote_parallel_map pays for two requests at
least. Safe to share between threads: each request takes an idle connection or opens one.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

IDLE_S = 20.0
"""A connection idle this long is not reused: the server may be closing it (main_service
keeps idle connections longer than this)."""


class HttpError(Exception):
    """The request got no answer: the connection failed or timed out."""


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class HttpPool:
    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._headers = headers
        self._timeout_s = timeout_s
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

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
        headers = dict(self._headers)
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers["content-type"] = "application/json"
        connection, reused = self._take(timeout_s)
        try:
            response = self._send(connection, method, target, content, headers)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            if not reused:
                raise HttpError(str(error) or type(error).__name__) from error
            # The server closed this kept-alive connection before reading the request,
            # so it did nothing with it: send it again on a new connection.
            connection, _ = self._take(timeout_s, fresh=True)
            try:
                response = self._send(connection, method, target, content, headers)
            except (OSError, http.client.HTTPException) as again:
                connection.close()
                raise HttpError(str(again) or type(again).__name__) from again
        self._give(connection)
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        content: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        connection.request(method, target, body=content, headers=headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.read())

    def _take(
        self, timeout_s: float | None, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        timeout = self._timeout_s if timeout_s is None else timeout_s
        now = time.monotonic()
        with self._lock:
            while self._idle and not fresh:
                connection, since = self._idle.pop()
                if now - since < IDLE_S:
                    connection.timeout = timeout
                    if connection.sock is not None:
                        connection.sock.settimeout(timeout)
                    return connection, True
                connection.close()
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout), False

    def _give(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append((connection, time.monotonic()))
