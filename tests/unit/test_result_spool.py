"""A worker's spool of results it has not sent: what its node reads when it died."""

from __future__ import annotations

from pathlib import Path

from burla.services.container_service.status import ResultSpool, read_spool, spool_path


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


def test_an_entry_cut_short_by_a_death_is_left_out(tmp_path: Path) -> None:
    path = spool_path(tmp_path / "worker-1")
    spool = ResultSpool(path)
    spool.add(1, "ok", b"whole")
    spool.add(2, "ok", b"cut short")
    path.write_bytes(path.read_bytes()[:-3])
    assert read_spool(path) == [(1, "ok", b"whole")]


def test_a_new_worker_starts_with_an_empty_spool(tmp_path: Path) -> None:
    path = spool_path(tmp_path / "worker-1")
    ResultSpool(path).add(1, "ok", b"from the worker before")
    ResultSpool(path)
    assert read_spool(path) == []
    assert read_spool(tmp_path / "none.results") == []
