"""The deployer's public address, asked of a name server the way Google's answers: a TXT
record of o-o.myaddr.l.google.com holding the address the query came from."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from burla.core.errors import InvalidRequestError
from burla.deploy.own_address import QUESTION, own_address, txt_answers


def answer_to(query: bytes, texts: list[str], rcode: int = 0) -> bytes:
    """A name server's answer: the question echoed, then TXT records pointing at it."""
    query_id = struct.unpack("!H", query[:2])[0]
    header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(texts), 0, 0)
    records = b""
    for text in texts:
        data = bytes([len(text)]) + text.encode()
        records += b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, len(data)) + data
    return header + query[12:] + records


@pytest.fixture
def name_server() -> Iterator[tuple[tuple[str, int], list[bytes], list[list[str]]]]:
    """A name server on loopback answering each query with the next list of TXT strings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    queries: list[bytes] = []
    replies: list[list[str]] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            queries.append(query)
            sock.sendto(answer_to(query, replies.pop(0)), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname(), queries, replies
    stop.set()
    thread.join(timeout=5)
    sock.close()


def test_the_address_in_the_answer_is_ours(name_server) -> None:
    server, queries, replies = name_server
    replies.append(["edns0-client-subnet 10.0.0.0/24", "203.0.113.7"])
    assert own_address(server) == "203.0.113.7"
    assert QUESTION.split(".")[0].encode() in queries[0]
    assert queries[0][-4:] == struct.pack("!HH", 16, 1)  # TXT, IN


def test_an_answer_without_an_address_says_what_to_do(name_server) -> None:
    server, _, replies = name_server
    replies.append(["no address here"])
    with pytest.raises(InvalidRequestError, match=r"--allow YOUR\.IP\.ADDRESS/32"):
        own_address(server)


def test_a_name_server_that_does_not_answer_says_what_to_do() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(InvalidRequestError, match="could not find your public address"):
            own_address(silent.getsockname(), timeout_s=0.2)


def test_an_answer_to_another_query_or_an_error_is_refused() -> None:
    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x01a\x00" + b"\x00\x10\x00\x01"
    with pytest.raises(ValueError, match="not the answer"):
        txt_answers(answer_to(query, ["1.2.3.4"]), 8)
    with pytest.raises(ValueError, match="error code 3"):
        txt_answers(answer_to(query, [], rcode=3), 7)
