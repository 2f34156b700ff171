"""The worker loop: take a job's function from the node, run inputs one at a time, and
send back results and printed lines in batches over one loopback connection.

The messages both ways are burla.core.worker_wire's: the node sends a job, frames of
inputs and the job's end; the worker sends printed lines and results back, and a Refusal
for a frame it cannot read (then it goes on, or hangs up if the bytes are no frames).
Only the node that started the worker may use it: the node hands each worker a secret of
its own in $BURLA_WORKER_SECRET and sends it in its first frame; any other caller on this
machine is hung up on (and the secret leaves the environment before user code runs).
The input running now is kept in the file $BURLA_STATUS_FILE (default: `status` in the
container's directory) so the node can tell, should this process die, which input
killed it, and how long it has run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import cloudpickle

from burla.core import wire, worker_wire
from burla.core.errors import InvalidRequestError
from burla.core.limits import FRAME_ENV, RequestLimits
from burla.core.settings import JOB_TOKEN_ENV
from burla.core.trace import mark
from burla.core.worker_wire import (
    EndJob,
    Inputs,
    JobStart,
    LineItem,
    Lines,
    Refusal,
    Results,
    read_to_worker,
)
from burla.services.container_service.capture import InputStream
from burla.services.container_service.outcome import pack_exception, pack_value
from burla.services.container_service.status import ResultSpool, StatusFile

FLUSH_S = 0.02
"""Longest a finished result waits to be sent with others while more inputs run."""
SEND_EVERY = 64
"""Most finished results a worker holds back, even in a frame of hundreds of short
inputs, so that its node hears of them in good time. A worker that dies loses none of
them: they are in its spool (status.ResultSpool). Each frame of results costs the worker
and its node tens of microseconds, so short inputs go back in frames of many."""

Frame = tuple[Any, bytes] | None
MAX_PAYLOAD = RequestLimits.from_environ(os.environ).frame
ONE_READ = 16 << 20
ONE_READ_MIN = 64 << 10
"""A read takes up to this much even when less is needed: the next frames come with it."""


class Connection:
    """Frames over a socket; sending is safe from several threads, receiving is the
    worker's main thread's alone."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buffer = bytearray()
        self._waiting = select.poll()
        self._waiting.register(sock, select.POLLIN)
        self._send_lock = threading.Lock()

    def send(self, messages: list[tuple[wire.Message, bytes]]) -> None:
        data = wire.encode_many([(message.to_json(), payload) for message, payload in messages])
        with self._send_lock:
            mark("worker sends")
            self._sock.sendall(data)

    def close(self) -> None:
        self._sock.close()

    def pending(self) -> bool:
        """Whether bytes of another frame have come (or the node hung up) already."""
        return bool(self._buffer) or bool(self._waiting.poll(0))

    def wait_for_hang_up(self) -> None:
        """Block until the node hangs up (or the socket closes here), reading nothing."""
        watch = select.poll()
        watch.register(self._sock, select.POLLRDHUP)
        while not watch.poll():
            pass

    def receive(self, max_payload: int | None = None) -> Frame:
        """The next frame (its header as JSON, and payload), or None once the node hung
        up (or for a payload over `max_payload` bytes). InvalidRequestError if the bytes
        are no frame (a header that is not JSON, a payload over MAX_PAYLOAD)."""
        if not self._fill(wire.PREFIX_SIZE):
            return None
        head, body = wire.lengths(bytes(self._buffer[: wire.PREFIX_SIZE]))
        if max_payload is not None and body > max_payload:
            return None
        if body > MAX_PAYLOAD:
            raise InvalidRequestError(
                f"a frame's payload of {body} bytes is over the limit of {MAX_PAYLOAD} bytes "
                f"({FRAME_ENV})"
            )
        end = wire.PREFIX_SIZE + head + body
        if not self._fill(end):
            return None
        with memoryview(self._buffer) as view:
            header = bytes(view[wire.PREFIX_SIZE : wire.PREFIX_SIZE + head])
            payload = bytes(view[wire.PREFIX_SIZE + head : end])
        del self._buffer[:end]
        return wire.decode_header(header), payload

    def _fill(self, size: int) -> bool:
        """Read until the buffer holds `size` bytes; False if the node hung up first. The
        buffer grows only as bytes come: a length that lies costs no memory."""
        while len(self._buffer) < size:
            chunk = self._sock.recv(min(max(size - len(self._buffer), ONE_READ_MIN), ONE_READ))
            if not chunk:
                return False
            self._buffer += chunk
        return True


def load_from(url: str) -> Any:
    """A big input's arguments, unpickled as they are read from the blob store's signed
    URL (a file of this machine's, or HTTP): its bytes are copied once, not twice."""
    if url.startswith("file://"):
        with open(unquote(urlsplit(url).path), "rb") as file:
            return cloudpickle.load(file)
    import urllib.request  # here: a local worker never needs it, and it is slow to load

    with urllib.request.urlopen(url, timeout=600) as response:
        return cloudpickle.load(response)


class Worker:
    def __init__(
        self, connection: Connection, status: StatusFile, spool: ResultSpool | None = None
    ) -> None:
        """`spool` keeps the finished results not sent yet where the node finds them if
        this worker dies (see status.ResultSpool)."""
        self.connection = connection
        self.status = status
        self.spool = spool
        self.job_id: str | None = None
        self.function: Callable[..., Any] | None = None
        self.packages_path: str | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time keeps lines before results
        self._logs: list[LineItem] = []
        self._results: list[tuple[int, str, bytes]] = []
        self._oldest_result = 0.0
        self._busy_s = 0.0
        self.hung_up = threading.Event()
        """The node is gone: results can no longer reach it, so no more inputs start."""
        self.stdout = InputStream("stdout", self._log)
        self.stderr = InputStream("stderr", self._log)

    def _log(self, index: int, stream: str, text: str) -> None:
        with self._lock:
            self._logs.append(LineItem(index, stream, text))

    def flush(self) -> None:
        """Send what printed and what finished; lines first, so a result follows its lines."""
        with self._flush_lock:
            self.stdout.flush()
            self.stderr.flush()
            with self._lock:
                logs, results, busy_s = self._logs, self._results, self._busy_s
                self._logs, self._results, self._busy_s = [], [], 0.0
            frames: list[tuple[wire.Message, bytes]] = []
            if logs:
                frames.append((Lines(self.job_id, tuple(logs)), b""))
            if results:
                assert self.job_id is not None, "results come only from a job's inputs"
                indices, kinds, pieces = zip(*results, strict=True)
                sizes = tuple(map(len, pieces))
                done = Results(self.job_id, indices, kinds, sizes, busy_s)
                frames.append((done, b"".join(pieces)))
            if frames:
                self.connection.send(frames)
            if results and self.spool is not None:
                with self._lock:  # what finished while they went out stays spooled
                    self.spool.keep(self._results)

    def serve(self) -> None:
        """Run what the node sends until it hangs up. Frames are read on this thread as
        it needs them (no thread hands them over); another only notices a hang-up, so
        that no more inputs start once their results cannot reach the node."""
        threading.Thread(target=self._watch, name="burla-hang-up", daemon=True).start()
        threading.Thread(target=self._flush_now_and_then, name="burla-flush", daemon=True).start()
        while (frame := self._next_frame()) is not None:
            header, payload = frame
            try:
                message = read_to_worker(header, payload)
            except InvalidRequestError as error:
                self.refuse(str(error))
                continue
            match message:
                case JobStart(job_id, packages_path, token):
                    self.use_packages(packages_path)
                    self.use_token(token)
                    self.start_job(job_id, payload)
                case Inputs(job_id) if job_id == self.job_id:
                    self.run_inputs(message, payload)
                case EndJob(job_id) if job_id == self.job_id:
                    self.flush()
                    self.job_id, self.function = None, None
            if not self.connection.pending():
                self.flush()
        self.hung_up.set()
        self.flush()

    def refuse(self, problem: str) -> None:
        self.connection.send([(Refusal(problem), b"")])

    def _next_frame(self) -> Frame:
        try:
            return self.connection.receive()
        except InvalidRequestError as error:  # the bytes are no frames: nothing more is
            with contextlib.suppress(OSError):
                self.refuse(f"{error}; hanging up")
            return None
        except OSError:
            return None

    def _watch(self) -> None:
        self.connection.wait_for_hang_up()
        self.hung_up.set()

    def _flush_now_and_then(self) -> None:
        """Keep lines live and results moving while one long input runs."""
        while True:
            time.sleep(0.1)
            try:
                self.flush()
            except OSError:
                return

    def use_packages(self, path: str | None) -> None:
        """Put a job's package folder on sys.path, in place of the last job's. Modules
        imported from the last one are forgotten, so that this job imports its own
        versions; a job with the same folder keeps them imported."""
        old = self.packages_path
        if path == old:
            return
        if old is not None:
            with_sep = old + os.sep
            for name, module in list(sys.modules.items()):
                file = getattr(module, "__file__", None) or ""
                paths = getattr(module, "__path__", None) or ()  # a namespace package's
                if file.startswith(with_sep) or any(str(p).startswith(with_sep) for p in paths):
                    del sys.modules[name]
            sys.path[:] = [entry for entry in sys.path if entry != old]
        if path is not None:
            sys.path.insert(0, path)
        importlib.invalidate_caches()
        self.packages_path = path

    def use_token(self, token: str | None) -> None:
        """Let calls the job's code makes to the cluster act as the job's owner."""
        if token is None:
            os.environ.pop(JOB_TOKEN_ENV, None)
        else:
            os.environ[JOB_TOKEN_ENV] = token

    def start_job(self, job_id: str, function: bytes) -> None:
        self.flush()
        mark("worker loads the function")
        self.job_id = job_id
        try:
            self.function = cloudpickle.loads(function)
        except BaseException as error:
            self.function = None
            message = "".join(traceback.format_exception(error))
            self.connection.send([(worker_wire.JobErrorReport(job_id, message), b"")])

    def run_inputs(self, inputs: Inputs, payload: bytes) -> None:
        """Run a frame's inputs; results go back when the frame is done, before the next
        input once results_due, and every 0.1 s while a long one runs. Each results frame
        says how long its inputs ran, from which the node sizes the next frames."""
        mark("worker has inputs")
        offset = 0
        urls = dict(inputs.fetched)
        for index, size in zip(inputs.indices, inputs.sizes, strict=True):
            if self.hung_up.is_set():
                return  # what it would run now runs again elsewhere anyway
            started = time.perf_counter()
            kind, data = self.run_one(index, payload[offset : offset + size], urls.get(index))
            ran = time.perf_counter() - started
            offset += size
            with self._lock:
                if not self._results:
                    self._oldest_result = started
                self._results.append((index, kind, data))
                if self.spool is not None:
                    self.spool.add(index, kind, data)
                self._busy_s += ran
                due = results_due(len(self._results), time.perf_counter() - self._oldest_result)
            if due:
                self.flush()
        self.flush()

    def run_one(self, index: int, data: bytes, url: str | None = None) -> tuple[str, bytes]:
        function = self.function
        if function is None:
            return pack_exception(index, RuntimeError("the worker has no function for this job"))
        self.status.set(index)
        self.stdout.index = self.stderr.index = index
        try:
            args = load_from(url) if url else cloudpickle.loads(data)
            result = function(*args)
        except BaseException as error:
            if error.__traceback__ is not None:
                error.__traceback__ = error.__traceback__.tb_next  # drop this frame
            # Its text, for the dashboard and `burla jobs show`: main_service never
            # unpickles the exception itself.
            self._log(index, wire.TRACEBACK_STREAM, "".join(traceback.format_exception(error)))
            return pack_exception(index, error)
        finally:
            self.stdout.flush()
            self.stderr.flush()
            self.status.set(-1)
        return pack_value(index, result)


def results_due(waiting: int, since_s: float) -> bool:
    """Whether the finished results waiting to be sent go before the next input starts:
    SEND_EVERY of them, or the first of them started more than FLUSH_S ago."""
    return waiting >= SEND_EVERY or since_s > FLUSH_S
