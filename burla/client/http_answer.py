"""Reads one HTTP/1.x answer from a socket: status line, headers and body, usually in one
receive, and with none of the standard library's header parsing (a warm call of
remote_parallel_map waits for every answer it reads).

Errors are OSError (the socket's, a timeout included) or a subclass of
http.client.HTTPException, as http.client raises them: RemoteDisconnected when the server
closed the connection before the answer's first byte (a kept-alive connection it had
closed), IncompleteRead when it closed in the middle, BadStatusLine, HeadTooLong (a
LineTooLong) and BadAnswer for what is not HTTP/1.x this client reads.
"""

from __future__ import annotations

import http.client
import re
import socket
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
"""Bytes of a status line and its headers (or of a chunked body's trailers) past which an
answer is refused."""
MAX_HEADERS = 100
MAX_INTERIM = 16
"""1xx answers (100 Continue, ...) skipped before an answer is refused."""
RECV_SIZE = 16 * 1024
MAX_AHEAD = 64 * 1024 * 1024
"""Bytes of room taken at once for a body of announced length: a larger one grows as it
arrives, so a broken Content-Length cannot take all memory."""

_STATUS = re.compile(r"HTTP/1\.([0-9]) ([0-9]{3})(?: .*)?", re.DOTALL)
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?", re.DOTALL)
_NO_BODY = frozenset({204, 304})


class BadAnswer(http.client.HTTPException):
    """The server's answer is not HTTP/1.x that this client reads."""


class HeadTooLong(http.client.LineTooLong):
    """An answer's head (or trailers, or a chunk's size line) longer than MAX_HEAD."""

    def __init__(self, part: str) -> None:
        http.client.HTTPException.__init__(self, f"{part} is longer than {MAX_HEAD} bytes")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    """By lower-case name; a name that came more than once has its values joined by ", "."""
    body: bytes
    keep_alive: bool
    """The connection may carry another request: the server did not say it closes it, and
    nothing came after this answer."""


def read_answer(sock: socket.socket, method: str) -> Answer:
    """The answer to the request `method` just sent on `sock`, 1xx answers skipped."""
    buffer = _Buffer(sock)
    if not buffer.receive(1):
        raise http.client.RemoteDisconnected("the server closed the connection without answering")
    for _ in range(MAX_INTERIM + 1):
        version, status, headers = _head(buffer)
        if not (100 <= status < 200) or status == 101:
            break
    else:
        raise BadAnswer(f"more than {MAX_INTERIM} interim (1xx) answers")
    keep = version >= 1  # HTTP/1.1 keeps connections unless it says otherwise; 1.0 the reverse
    if "connection" in headers:
        tokens = {token.strip().lower() for token in headers["connection"].split(",")}
        keep = "close" not in tokens and (keep or "keep-alive" in tokens)
    if method == "HEAD" or status < 200 or status in _NO_BODY:
        body = b""
        keep = keep and status != 101  # 101: the connection speaks another protocol now
    elif "transfer-encoding" in headers:
        if headers["transfer-encoding"].rsplit(",", 1)[-1].strip().lower() == "chunked":
            body = _chunked(buffer)
        else:
            body, keep = buffer.rest(), False
    elif "content-length" in headers:
        body = buffer.take(_length(headers["content-length"]))
    else:
        body, keep = buffer.rest(), False  # the body ends where the connection does
    # Bytes past the answer would be lost with this buffer: the connection is not reused.
    return Answer(status, headers, body, keep and buffer.pos == buffer.end)


class _Buffer:
    """Bytes received from a socket; data[pos:end] are not read yet."""

    __slots__ = ("_sock", "data", "end", "pos", "view")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.data = bytearray(RECV_SIZE)
        self.view = memoryview(self.data)
        self.pos = self.end = 0

    def receive(self, need: int) -> int:
        """Receive what the socket has, with room for at least `need` unread bytes (more
        than are unread now); how many came (0: the server closed the connection)."""
        unread = self.end - self.pos
        if unread == 0:
            self.pos = self.end = 0
        if self.pos + need > len(self.data):
            # Moved to a new buffer of its own: the old one may still be viewed.
            data = bytearray(max(min(need, unread + MAX_AHEAD), 2 * unread, RECV_SIZE))
            data[:unread] = self.view[self.pos : self.end]
            self.view.release()
            self.data, self.view, self.pos, self.end = data, memoryview(data), 0, unread
        with self.view[self.end :] as room:
            received = self._sock.recv_into(room)
        self.end += received
        return received

    def head(self) -> str:
        """The next lines up to the empty line that ends them (a status line and its
        headers), the last one's LF included."""
        seen = 0  # unread bytes searched already (receive may move them)
        while True:
            start = self.pos + max(seen - 2, 0)  # an empty line may have begun in them
            crlf = self.data.find(b"\n\r\n", start, self.end)
            lf = self.data.find(b"\n\n", start, self.end)
            if crlf >= 0 and (lf < 0 or crlf < lf):
                last, after = crlf, crlf + 3
                break
            if lf >= 0:
                last, after = lf, lf + 2
                break
            seen = self.end - self.pos
            if seen > MAX_HEAD:
                raise HeadTooLong("the answer's head")
            if not self.receive(seen + 1):
                raise http.client.IncompleteRead(bytes(self.view[self.pos : self.end]))
        if last - self.pos > MAX_HEAD:
            raise HeadTooLong("the answer's head")
        text = str(self.view[self.pos : last + 1], "latin-1")
        self.pos = after
        return text

    def line(self, limit: int, part: str) -> bytes:
        """The next line, without its CRLF (or LF); HeadTooLong past `limit` bytes."""
        seen = 0  # unread bytes searched already (receive may move them)
        while (eol := self.data.find(b"\n", self.pos + seen, self.end)) < 0:
            seen = self.end - self.pos
            if seen >= limit:
                raise HeadTooLong(part)
            if not self.receive(seen + 1):
                raise http.client.IncompleteRead(bytes(self.view[self.pos : self.end]))
        if eol - self.pos >= limit:
            raise HeadTooLong(part)
        start, self.pos = self.pos, eol + 1
        if eol > start and self.data[eol - 1] == 13:  # b"\r"
            eol -= 1
        return bytes(self.view[start:eol])

    def take(self, size: int) -> bytes:
        """The next `size` bytes."""
        while self.end - self.pos < size:
            if not self.receive(size):
                got = bytes(self.view[self.pos : self.end])
                raise http.client.IncompleteRead(got, size - len(got))
        start = self.pos
        self.pos += size
        return bytes(self.view[start : self.pos])

    def rest(self) -> bytes:
        """Everything up to the end of the connection."""
        while self.receive(self.end - self.pos + RECV_SIZE // 4):
            pass
        start, self.pos = self.pos, self.end
        return bytes(self.view[start : self.end])


def _head(buffer: _Buffer) -> tuple[int, int, dict[str, str]]:
    """The next status line and headers: HTTP minor version, status and headers."""
    text = buffer.head().replace("\r\n", "\n")
    status_line, *lines = text.split("\n")
    status = _STATUS.fullmatch(status_line)
    if status is None:
        raise http.client.BadStatusLine(f"not an HTTP/1 status line: {status_line[:200]!r}")
    if "\r" in text:
        raise BadAnswer(f"a CR that ends no line in the answer's head: {text[:200]!r}")
    lines.pop()  # after the last LF
    if len(lines) > MAX_HEADERS:
        raise BadAnswer(f"more than {MAX_HEADERS} header lines in the answer's head")
    headers: dict[str, str] = {}
    for line in lines:
        _add_field(headers, line, "the answer's head")
    return int(status[1]), int(status[2]), headers


def _add_field(fields: dict[str, str], line: str, part: str) -> None:
    """Add a header (or trailer) line's name (in lower case) and value to `fields`."""
    name, colon, value = line.partition(":")
    if not colon or not _NAME.fullmatch(name):
        what = "a folded header line" if line[:1] in (" ", "\t") else "not a header line"
        raise BadAnswer(f"{what} in {part}: {line[:200]!r}")
    name, value = name.lower(), value.strip(" \t")
    fields[name] = f"{fields[name]}, {value}" if name in fields else value


def _trailers(buffer: _Buffer) -> dict[str, str]:
    """A chunked body's trailer lines, up to the empty line that ends them."""
    fields: dict[str, str] = {}
    limit = MAX_HEAD
    for _ in range(MAX_HEADERS + 1):
        line = buffer.line(limit, "the answer's trailers")
        if not line:
            return fields
        limit -= len(line) + 2
        _add_field(fields, line.decode("latin-1"), "the answer's trailers")
    raise BadAnswer(f"more than {MAX_HEADERS} lines in the answer's trailers")


def _length(value: str) -> int:
    """A Content-Length: one number, or the same number repeated ("12, 12")."""
    if _LENGTH.fullmatch(value):
        return int(value)
    numbers = {number.strip() for number in value.split(",")}
    if len(numbers) != 1 or not _LENGTH.fullmatch(number := numbers.pop()):
        raise BadAnswer(f"not a Content-Length: {value[:200]!r}")
    return int(number)


def _chunked(buffer: _Buffer) -> bytes:
    """A chunked body: chunks (their extensions ignored) up to the last, then trailers."""
    chunks: list[bytes] = []
    while True:
        line = buffer.line(MAX_HEAD, "a chunk's size line")
        size = _CHUNK_SIZE.fullmatch(line)
        if size is None:
            raise BadAnswer(f"not a chunk's size line: {line[:200]!r}")
        if not (length := int(size[1], 16)):
            break
        chunks.append(buffer.take(length))
        if buffer.line(MAX_HEAD, "the end of a chunk"):
            raise BadAnswer("a chunk is longer than its size says")
    _trailers(buffer)
    return b"".join(chunks)
