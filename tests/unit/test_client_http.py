"""The client's kept-alive HTTP connections, against a real server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from burla.client.http import HttpError, HttpPool


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: set[int]
    requests: list[str]
    close_after_answer = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"] or 0))
        type(self).connections.add(self.client_address[1])
        type(self).requests.append(self.path)
        if self.path == "/slow":
            time.sleep(1.5)  # past the client's time-out
        answer = self.headers["authorization"].encode() + b" " + self.path.encode() + b" " + body
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if type(self).close_after_answer:
            self.close_connection = True  # as a server whose keep-alive ran out

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[type[Echo], str]]:
    handler = type("Handler", (Echo,), {"connections": set(), "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def test_requests_reuse_one_connection(server: tuple[type[Echo], str]) -> None:
    handler, url = server
    pool = HttpPool(url, {"authorization": "Bearer t"}, timeout_s=10)
    first = pool.request("POST", "/a", params={"x": 1}, content=b"one")
    second = pool.request("POST", "/b", json_body={"n": 2})
    pool.close()
    assert first.content == b"Bearer t /a?x=1 one"
    assert second.content == b'Bearer t /b {"n": 2}'
    assert first.is_success
    assert len(handler.connections) == 1


def test_a_connection_the_server_closed_is_replaced_without_a_failure(
    server: tuple[type[Echo], str],
) -> None:
    handler, url = server
    handler.close_after_answer = True
    pool = HttpPool(url, {"authorization": "Bearer t"}, timeout_s=10)
    answers = [pool.request("POST", f"/{n}", content=b"x").content for n in range(3)]
    pool.close()
    assert answers == [b"Bearer t /0 x", b"Bearer t /1 x", b"Bearer t /2 x"]
    assert len(handler.connections) == 3


def test_no_server_is_an_http_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    pool = HttpPool(f"http://127.0.0.1:{port}", {}, timeout_s=5)
    with pytest.raises(HttpError):
        pool.request("POST", "/", content=b"")


def test_a_kept_alive_connection_that_times_out_is_not_asked_again(
    server: tuple[type[Echo], str],
) -> None:
    handler, url = server
    pool = HttpPool(url, {"authorization": "Bearer t"}, timeout_s=10)
    pool.request("POST", "/first", content=b"x")  # the connection is kept alive
    with pytest.raises(HttpError):
        pool.request("POST", "/slow", content=b"x", timeout_s=0.5)
    pool.close()
    assert handler.requests == ["/first", "/slow"]  # the slow request went once
