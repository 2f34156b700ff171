"""A worker's status and spool of results it has not sent: what its node reads when it
died."""

from __future__ import annotations

import time
from pathlib import Path

from burla.services.container_service.status import (
    SPOOL_KEPT_SIZE,
    ResultSpool,
    StatusFile,
    read_spool,
    read_status,
    spool_path,
)


def test_results_spooled_are_read_back_until_they_are_sent(tmp_path: Path) -> None:
    path = spool_path(tmp_path / "worker-1")
    spool = ResultSpool(path)
    spool.add(3, "ok", b"three")
    spool.add(4, "raised", b"\x00" * 1000)
    assert read_spool(path) == [(3, "ok", b"three"), (4, "raised", b"\x00" * 1000)]
    spool.keep([(4, "raised", b"x")])  # 3 went out; 4 finished while it did
    assert read_spool(path) == [(4, "raised", b"x")]
    spool.keep([])
    assert read_spool(path) == []


def test_an_entry_cut_short_is_left_out(tmp_path: Path) -> None:
    path = spool_path(tmp_path / "worker-1")
    spool = ResultSpool(path)
    spool.add(1, "ok", b"whole")
    spool.add(2, "ok", b"cut short")
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"cut short") + 3])
    assert read_spool(path) == [(1, "ok", b"whole")]


def test_results_bigger_than_the_spool_grow_it_and_it_shrinks_once_they_went(
    tmp_path: Path,
) -> None:
    path = spool_path(tmp_path / "worker-1")
    spool = ResultSpool(path)
    big = bytes(range(256)) * (SPOOL_KEPT_SIZE // 64)
    spool.add(1, "ok", b"small")
    spool.add(2, "ok", big)
    assert read_spool(path) == [(1, "ok", b"small"), (2, "ok", big)]
    spool.keep([(3, "ok", b"after")])
    assert read_spool(path) == [(3, "ok", b"after")]
    assert path.stat().st_size <= SPOOL_KEPT_SIZE


def test_the_status_names_the_input_running_and_since_when(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "status")
    assert read_status(tmp_path / "status") is None
    before = time.time()
    status.set(7)
    running = read_status(tmp_path / "status")
    assert running is not None
    assert running.index == 7
    assert running.started_at >= before
    status.set(-1)
    assert read_status(tmp_path / "status") is None


def test_a_new_worker_starts_with_an_empty_spool(tmp_path: Path) -> None:
    path = spool_path(tmp_path / "worker-1")
    ResultSpool(path).add(1, "ok", b"from the worker before")
    ResultSpool(path)
    assert read_spool(path) == []
    assert read_spool(tmp_path / "none.results") == []
