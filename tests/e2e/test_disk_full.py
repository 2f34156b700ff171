"""A local cluster whose blob store's disk is full: the job that needs room there fails with a
BurlaError that names the directory and says what to do, and the cluster goes on."""

from __future__ import annotations

import pytest

from burla import BackendError, remote_parallel_map
from burla.client import local
from burla.client.map import Session
from tests.small_disk import small_disk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_full_blob_disk_is_named_and_the_cluster_goes_on(tmp_path, monkeypatch):
    root = tmp_path / "cluster"
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(root))
    monkeypatch.setenv("BURLA_LOCAL_CPUS", "2")
    with small_disk(root / "blobs", "2m") as blobs:
        try:
            local.start(root)
            big = b"x" * (3 << 20)  # bigger than inline: it goes to the blob store's disk
            with pytest.raises(BackendError, match="is full") as raised:
                remote_parallel_map(len, [big], spinner=False)
            message = str(raised.value)
            assert str(blobs) in message
            assert "free space there" in message
            assert not [p for p in blobs.rglob("*") if p.is_file()], "a partial upload was left"
            assert remote_parallel_map(len, [b"small", b"x" * (1 << 20)], spinner=False) == [
                5,
                1 << 20,
            ]
        finally:
            Session.close_all()
            local.stop(root)
