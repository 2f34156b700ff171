"""The deployer's public IP address, which main_service's firewall rule opens to by default.

Asked of Google's name servers, which answer a TXT query for o-o.myaddr.l.google.com with
the address the query came from: one UDP round trip, no web service, nothing installed.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct

from burla.core.errors import InvalidRequestError

GOOGLE_NAME_SERVER = ("216.239.32.10", 53)
"""ns1.google.com."""
QUESTION = "o-o.myaddr.l.google.com"
TXT, IN = 16, 1
TIMEOUT_S = 5.0
"""How long to wait for the name server (a silent one is an error, not a hang)."""


def own_address(server: tuple[str, int] = GOOGLE_NAME_SERVER, timeout_s: float = TIMEOUT_S) -> str:
    """This machine's address as the internet sees it; InvalidRequestError if unknown."""
    query_id = secrets.randbits(16)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout_s)
            sock.sendto(dns_query(query_id, QUESTION), server)
            answer, _ = sock.recvfrom(4096)
        for text in txt_answers(answer, query_id):
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                continue  # other records (a resolver's subnet) come as text too
        problem = "the answer held no address"
    except (OSError, ValueError) as error:
        problem = str(error) or type(error).__name__
    raise InvalidRequestError(
        f"could not find your public address ({problem}); say who may reach main_service: "
        "--allow YOUR.IP.ADDRESS/32"
    )


def dns_query(query_id: int, name: str) -> bytes:
    """A recursive-desired query for the TXT records of `name`."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return header + labels + b"\0" + struct.pack("!HH", TXT, IN)


def txt_answers(message: bytes, query_id: int) -> list[str]:
    """The TXT strings of a DNS answer to query `query_id`; ValueError if it is not one."""
    if len(message) < 12:
        raise ValueError("a DNS answer too short to read")
    answer_id, flags, questions, answers = struct.unpack("!HHHH", message[:8])
    if answer_id != query_id or not flags & 0x8000:
        raise ValueError("not the answer to our query")
    if flags & 0x000F:
        raise ValueError(f"the name server answered with error code {flags & 0x000F}")
    offset = 12
    for _ in range(questions):
        offset = _skip_name(message, offset) + 4
    found = []
    for _ in range(answers):
        offset = _skip_name(message, offset)
        kind, _, _, length = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        data, offset = message[offset : offset + length], offset + length
        while kind == TXT and data:
            found.append(data[1 : 1 + data[0]].decode())
            data = data[1 + data[0] :]
    return found


def _skip_name(message: bytes, offset: int) -> int:
    """The offset past a (possibly compressed) name."""
    while True:
        if offset >= len(message):
            raise ValueError("a DNS name runs past the answer")
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length
