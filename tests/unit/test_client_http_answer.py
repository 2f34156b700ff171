"""The client's reader of HTTP/1.x answers, against canned bytes a thread writes to a real
socket: whole, or byte by byte to a reader that receives one byte at a time."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burla.client.http import HttpPool
from burla.client.http_answer import MAX_HEAD, MAX_HEADERS, Answer, BadAnswer, read_answer
from burla.services.tls import ensure_certificate


class OneByteAtATime(socket.socket):
    """A socket whose every receive takes one byte: each read has to be pieced together."""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return super().recv_into(buffer, 1, flags)


@contextlib.contextmanager
def writer(data: bytes, *, split: bool = False, close: bool = True) -> Iterator[socket.socket]:
    """The reading end of a socket pair whose other end gets `data` (byte by byte when
    `split`) and, when `close`, is closed after it."""
    ours, theirs = socket.socketpair()
    if split:
        ours = OneByteAtATime(ours.family, ours.type, ours.proto, fileno=ours.detach())
    ours.settimeout(10)  # a reader waiting for bytes that never come fails, not hangs

    def write() -> None:
        with contextlib.suppress(OSError):  # the reader may stop reading and close first
            for piece in [data[n : n + 1] for n in range(len(data))] if split else [data]:
                theirs.sendall(piece)
            if close:
                theirs.close()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield ours
    finally:
        ours.close()
        thread.join(timeout=10)
        theirs.close()


def answer_to(
    data: bytes, method: str = "GET", *, split: bool = False, close: bool = False
) -> Answer:
    with writer(data, split=split, close=close) as sock:
        return read_answer(sock, method)


@pytest.mark.parametrize("split", [False, True])
def test_a_body_of_announced_length_keeps_the_connection(split: bool) -> None:
    answer = answer_to(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-LENGTH: 11\r\n\r\nhello world",
        split=split,
    )
    assert (answer.status, answer.body, answer.keep_alive) == (200, b"hello world", True)
    assert answer.headers == {"content-type": "text/plain", "content-length": "11"}


@pytest.mark.parametrize("split", [False, True])
def test_a_chunked_body_with_extensions_and_trailers(split: bool) -> None:
    answer = answer_to(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'7 ; x="y;z"\r\n, world\r\n'
        b"A\r\n0123456789\r\n"
        b"0;last\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n",
        split=split,
    )
    assert (answer.body, answer.keep_alive) == (b"hello, world0123456789", True)


@pytest.mark.parametrize("split", [False, True])
def test_a_body_without_length_ends_with_the_connection(split: bool) -> None:
    body = bytes(range(256)) * (8 if split else 800)  # whole: larger than one receive
    answer = answer_to(b"HTTP/1.1 200 OK\r\n\r\n" + body, split=split, close=True)
    assert (answer.body, answer.keep_alive) == (body, False)


def test_a_large_body_of_announced_length() -> None:
    body = b"x" * 300_000
    answer = answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + body)
    assert (len(answer.body), answer.body == body, answer.keep_alive) == (300_000, True, True)


@pytest.mark.parametrize("split", [False, True])
def test_interim_answers_are_skipped(split: bool) -> None:
    answer = answer_to(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        split=split,
    )
    assert (answer.status, answer.body, answer.headers) == (201, b"ok", {"content-length": "2"})


def test_an_answer_to_head_has_no_body() -> None:
    answer = answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD")
    assert (answer.status, answer.body, answer.keep_alive) == (200, b"", True)


def test_no_content_has_no_body() -> None:
    answer = answer_to(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert (answer.status, answer.body, answer.keep_alive) == (204, b"", True)


@pytest.mark.parametrize(
    ("version", "connection", "kept"),
    [
        ("HTTP/1.1", "", True),
        ("HTTP/1.1", "Connection: close\r\n", False),
        ("HTTP/1.1", "Connection: Upgrade, CLOSE\r\n", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", True),
    ],
)
def test_whether_the_connection_is_kept(version: str, connection: str, kept: bool) -> None:
    head = f"{version} 200 OK\r\n{connection}Content-Length: 2\r\n\r\n"
    answer = answer_to(head.encode() + b"ok")
    assert (answer.body, answer.keep_alive) == (b"ok", kept)


def test_bytes_after_the_answer_are_not_left_on_a_kept_connection() -> None:
    answer = answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert (answer.body, answer.keep_alive) == (b"ok", False)


def test_a_line_ending_in_lf_alone_and_a_status_without_reason() -> None:
    answer = answer_to(b"HTTP/1.1 404\nContent-Length: 4\n\nnope")
    assert (answer.status, answer.body) == (404, b"nope")


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.1 OK", b"HTTP/2 200 OK", b"ICY 200 OK", b"HTTP/1.1 20 OK", b"", b"garbage"],
)
def test_a_malformed_status_line_is_refused(status_line: bytes) -> None:
    with pytest.raises(http.client.BadStatusLine, match="not an HTTP/1 status line"):
        answer_to(status_line + b"\r\nContent-Length: 0\r\n\r\n")


def test_a_head_too_long_is_refused() -> None:
    header = b"X-Big: " + b"a" * MAX_HEAD + b"\r\n"
    with pytest.raises(http.client.LineTooLong, match="longer than"):
        answer_to(b"HTTP/1.1 200 OK\r\n" + header + b"Content-Length: 0\r\n\r\n")


def test_a_line_that_never_ends_is_refused_without_waiting_for_its_end() -> None:
    # The writer neither ends the line nor closes the connection.
    with pytest.raises(http.client.LineTooLong):
        answer_to(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10))


def test_too_many_headers_are_refused() -> None:
    headers = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1))
    with pytest.raises(BadAnswer, match="more than"):
        answer_to(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"X-A: one\r\n two", "folded"),
        (b"X-A: one\rtwo", "a CR that ends no line"),
        (b"X-A one", "not a header line"),
        (b"X A: one", "not a header line"),
        (b": one", "not a header line"),
        (b"Content-Length: 3x", "not a Content-Length"),
        (b"Content-Length: 3, 4", "not a Content-Length"),
    ],
)
def test_odd_header_lines_are_refused(line: bytes, match: str) -> None:
    with pytest.raises(BadAnswer, match=match):
        answer_to(b"HTTP/1.1 200 OK\r\n" + line + b"\r\n\r\nabc")


def test_a_repeated_content_length_of_one_value_is_read() -> None:
    answer = answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc")
    assert answer.body == b"abc"


@pytest.mark.parametrize(
    "body", [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\n\r\n"]
)
def test_a_broken_chunked_body_is_refused(body: bytes) -> None:
    with pytest.raises(BadAnswer):
        answer_to(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)


@pytest.mark.parametrize("split", [False, True])
def test_a_connection_closed_in_the_middle_of_the_body(split: bool) -> None:
    with pytest.raises(http.client.IncompleteRead) as raised:
        answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", split=split, close=True)
    assert (raised.value.partial, raised.value.expected) == (b"abc", 7)


def test_a_connection_closed_in_the_middle_of_a_chunk_or_the_head() -> None:
    with pytest.raises(http.client.IncompleteRead):
        answer_to(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", close=True)
    with pytest.raises(http.client.IncompleteRead):
        answer_to(b"HTTP/1.1 200 OK\r\nContent-Len", close=True)


def test_a_connection_closed_before_any_byte() -> None:
    with pytest.raises(http.client.RemoteDisconnected):
        answer_to(b"", close=True)


def test_an_answer_over_tls(tmp_path: Path) -> None:
    certificate = ensure_certificate(tmp_path / "tls", ["127.0.0.1"])
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate.cert_path, certificate.key_path)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(certificate.cert_path)
    body = bytes(range(256)) * 400  # several TLS records
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)

    def serve() -> None:
        with (
            contextlib.suppress(OSError),
            server_context.wrap_socket(theirs, server_side=True) as tls,
        ):
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            tls.recv(1)  # until the client is done

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with client_context.wrap_socket(ours, server_hostname="127.0.0.1") as tls:
        answer = read_answer(tls, "GET")
    thread.join(timeout=10)
    assert (answer.body == body, answer.keep_alive) == (True, True)


class CannedServer:
    """A TCP server on loopback that answers each request on a connection with the next
    of its canned answers, and closes the connection where `None` stands in the list."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.answers:
            connection, _ = self.listener.accept()
            self.connections += 1
            with connection:
                while self.answers and (answer := self.answers.pop(0)) is not None:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        if not (received := connection.recv(65536)):
                            return
                        request += received
                    connection.sendall(answer)

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.listener.close()


def test_the_pool_keeps_and_drops_connections_as_answers_say() -> None:
    server = CannedServer(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nc",  # ends with the connection
            None,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd",
            None,  # closes a kept-alive connection: the pool sends the request again
            b"HTTP/1.1 500 Oops\r\nContent-Length: 1\r\nConnection: close\r\n\r\ne",
            None,
        ]
    )
    pool = HttpPool(server.url, {}, timeout_s=10)
    answers = [pool.request("GET", "/") for _ in range(5)]
    pool.close()
    server.close()
    assert [(a.status_code, a.content, a.resent) for a in answers] == [
        (200, b"a", False),
        (200, b"b", False),
        (200, b"c", False),
        (200, b"d", False),
        (500, b"e", True),
    ]
    assert server.connections == 3
