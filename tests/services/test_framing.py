"""Frames over real loopback sockets, however the bytes are cut on their way: the node's
end (services.framing, on the event loop) and the worker's (container_service.worker, a
blocking socket on its main thread)."""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burla.core import wire
from burla.services.container_service.worker import Connection
from burla.services.framing import FrameConnection, open_frames, serve_frames

pytestmark = pytest.mark.anyio

FRAMES = [
    ({"n": 0}, b""),
    (["results", 1, [2, 3]], b"x" * 5),
    ({"big": True}, bytes(range(256)) * 16),
    ({"n": 3}, b"last"),
]
DATA = wire.encode_many(FRAMES)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of a loopback TCP connection, as between a node and a worker."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        left = socket.create_connection(server.getsockname())
        right, _ = server.accept()
    left.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return left, right


def cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` in pieces of the given sizes (cycled), the last piece whatever is left."""
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset, index = offset + size, index + 1


def send_in_pieces(sock: socket.socket, pieces: Iterator[bytes]) -> None:
    for count, piece in enumerate(pieces):
        sock.sendall(piece)
        if count < 100:
            time.sleep(0.0005)  # each its own segment, not coalesced by the kernel


@contextlib.asynccontextmanager
async def taken() -> AsyncIterator[tuple[FrameConnection, socket.socket]]:
    """A connection serve_frames took (as a node takes main_service's), and a plain
    socket at its other end."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        connections: list[FrameConnection] = []
        arrived, done = anyio.Event(), anyio.Event()

        async def hold(connection: FrameConnection) -> None:
            connections.append(connection)
            arrived.set()
            await done.wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(serve_frames, server, hold, tasks)
            far = socket.create_connection(server.getsockname())
            with anyio.fail_after(10):
                await arrived.wait()
            try:
                yield connections[0], far
            finally:
                await connections[0].aclose()
                done.set()
                far.close()
                tasks.cancel_scope.cancel()


async def frames_received(pieces: list[bytes], opened_here: bool) -> list[object]:
    """What the node's end reads: a connection it opened (to a worker or, in
    main_service, to a node) or one it took (main_service's, on a node)."""
    async with contextlib.AsyncExitStack() as stack:
        if opened_here:
            with socket.create_server(("127.0.0.1", 0)) as server:
                frames = await open_frames(*server.getsockname())
                left, _ = server.accept()
        else:
            frames, left = await stack.enter_async_context(taken())
        left.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await _read_all(frames, left, pieces)


async def _read_all(
    frames: FrameConnection, left: socket.socket, pieces: list[bytes]
) -> list[object]:
    sender = threading.Thread(target=send_in_pieces, args=(left, iter(pieces)))
    sender.start()
    received: list[object] = []
    with anyio.fail_after(30):
        while len(received) < len(FRAMES):
            frame = await frames.receive()
            if frame is None:
                break
            received.append(frame)
    sender.join()
    left.close()
    await frames.aclose()
    return received


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=6),
    st.booleans(),
)
def test_the_node_end_reads_every_frame_whole_however_the_bytes_are_cut(sizes, opened_here):
    received = anyio.run(frames_received, list(cut(DATA, sizes)), opened_here)
    assert received == [(header, payload) for header, payload in FRAMES]


async def test_a_connection_opened_here_waits_while_the_other_end_reads_nothing():
    with socket.create_server(("127.0.0.1", 0)) as server:
        frames = await open_frames(*server.getsockname())
        far, _ = server.accept()
    big = ({"n": 9}, b"y" * (32 << 20))  # more than the sockets' buffers hold
    sent = anyio.Event()

    async def send() -> None:
        await frames.send([big])
        sent.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(send)
        await anyio.sleep(0.3)
        assert not sent.is_set()  # the socket is full: the send waits
        read = await anyio.to_thread.run_sync(
            functools.partial(Connection(far).receive, max_payload=64 << 20)
        )
        with anyio.fail_after(10):
            await sent.wait()
    assert read == big
    await frames.aclose()
    far.close()


async def test_a_connection_opened_here_refuses_bytes_that_are_no_frame_and_a_gone_peer():
    with socket.create_server(("127.0.0.1", 0)) as server:
        frames = await open_frames(*server.getsockname())
        far, _ = server.accept()
    far.sendall(wire.encode_many(FRAMES[:1]) + b"\x00\x00\x00\x03\x00\x00\x00\x00nul")
    with anyio.fail_after(10):
        assert await frames.receive() == FRAMES[0]
        assert await frames.receive() is None
    assert frames.refusal is not None
    assert "not JSON" in frames.refusal
    far.close()
    with anyio.fail_after(10):
        while True:  # the close is seen at the latest by the second write after it
            try:
                await frames.send([FRAMES[0]])
            except anyio.BrokenResourceError:
                break
            await anyio.sleep(0.01)
    await frames.aclose()


async def test_frames_before_bytes_that_are_no_frame_are_read_then_the_stream_refuses():
    garbage = b"\x00\x00\x00\x03\x00\x00\x00\x00nul"  # a header that is not JSON
    async with taken() as (frames, far):
        far.sendall(wire.encode_many(FRAMES[:2]) + garbage + wire.encode_many(FRAMES[2:]))
        with anyio.fail_after(10):
            assert [await frames.receive(), await frames.receive()] == FRAMES[:2]
            assert await frames.receive() is None
            assert await frames.receive() is None  # and stays refused
        assert frames.refusal is not None
        assert "not JSON" in frames.refusal


async def test_a_payload_over_the_limit_is_refused_before_its_bytes_come():
    async with taken() as (frames, far):
        far.sendall(struct.pack(">II", 2, (1 << 32) - 1))  # a payload of 4 GiB announced
        with anyio.fail_after(10):
            assert await frames.receive() is None
        assert frames.refusal is not None
        assert "over the limit" in frames.refusal


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=6))
def test_the_worker_end_reads_every_frame_whole_however_the_bytes_are_cut(sizes):
    left, right = tcp_pair()
    sender = threading.Thread(target=send_in_pieces, args=(left, cut(DATA, sizes)))
    sender.start()
    connection = Connection(right)
    received = [connection.receive() for _ in FRAMES]
    sender.join()
    left.close()
    assert received == FRAMES
    assert connection.receive() is None  # the node hung up
    connection.close()


def test_the_worker_end_knows_a_frame_is_waiting_and_when_the_node_hangs_up():
    left, right = tcp_pair()
    connection = Connection(right)
    assert not connection.pending()
    left.sendall(wire.encode_many(FRAMES[:2]))
    assert connection.receive() == FRAMES[0]
    assert connection.pending()  # the second came with the first
    assert connection.receive() == FRAMES[1]
    assert not connection.pending()
    watcher = threading.Thread(target=connection.wait_for_hang_up)
    watcher.start()
    time.sleep(0.05)
    assert watcher.is_alive()  # nothing came: it waits
    left.sendall(wire.encode(*FRAMES[3]))
    time.sleep(0.05)
    assert watcher.is_alive()  # a frame is no hang-up, and it is left to be read
    left.close()
    watcher.join(10)
    assert not watcher.is_alive()
    assert connection.receive() == FRAMES[3]
    assert connection.receive() is None
    connection.close()
