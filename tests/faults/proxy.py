"""A TCP proxy on 127.0.0.1 that delays what passes and now and then loses an answer.

It stands between a client and main_service. A request always reaches the server; every
`drop_every`-th chunk of answer is thrown away and both connections are closed, as when
a network breaks after the server did the work, so the client must ask again without the
work being done twice. Every other chunk from the server is held back by up to `delay_s`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LossyProxy:
    upstream: tuple[str, int]
    drop_every: int
    delay_s: float
    seed: int = 0
    dropped: int = 0
    passed: int = 0
    _listener: socket.socket = field(init=False)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: set[socket.socket] = field(default_factory=set)
    _closing: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()
        return f"http://{host}:{port}"

    def close(self) -> None:
        """Stop accepting and close every connection still open."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            still_open, self._open = self._open, set()
        for sock in still_open:
            _close(sock)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closing:
                    _close(client)
                    _close(server)
                    return
                self._open |= {client, server}
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if answers:
                    with self._lock:
                        lose = (self.dropped + self.passed + 1) % self.drop_every == 0
                        pause = self._rng.uniform(0, self.delay_s)
                        if lose:
                            self.dropped += 1
                        else:
                            self.passed += 1
                    if lose:
                        break
                    time.sleep(pause)
                target.sendall(data)
        with self._lock:
            self._open -= {source, target}
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
