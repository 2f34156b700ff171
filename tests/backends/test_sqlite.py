"""What only the SQLite store does: several processes and threads on one file, its state
after a reopen, its receipts, and what it says of a full disk, a held lock and a bad file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import anyio
import pytest

from burla.backends.local.store import SqliteStore
from burla.core.errors import BackendError, TransientBackendError


@pytest.mark.anyio
class TestSqliteStoreOnly:
    async def test_lone_surrogates_round_trip_and_the_file_holds_json(self, tmp_path: Path) -> None:
        data = {"text": "h\u00e9llo \U0001f600 \ud800", "empty": b""}
        with SqliteStore(tmp_path / "s.db") as store:
            assert (await store.put("k", data)).data == data
            read = await store.get("k")
            assert read is not None
            assert read.data == data
            assert await store.put_many({"m": data}) == {"m"}
            [listed] = await store.list("m")
            assert listed.data == data
        # Nothing is pickled: the file holds JSON text that any reader can check.
        with sqlite3.connect(tmp_path / "s.db") as raw:
            [(text,)] = raw.execute("SELECT data FROM documents WHERE key = 'k'").fetchall()
        raw.close()
        assert json.loads(text)["empty"] == {"$bytes": ""}

    async def test_reopened_store_keeps_documents_and_queue_state(self, tmp_path: Path) -> None:
        path = tmp_path / "s.db"
        with SqliteStore(path) as store:
            await store.put("k", {"n": 1})
            await store.put("k", {"n": 2})
            await store.push("q", [("a", b"a"), ("b", b"b"), ("c", b"c")])
            [held] = await store.claim("q", limit=1, lease_s=60)
        with SqliteStore(path) as store:
            read = await store.get("k")
            assert read is not None
            assert (read.data, read.version) == ({"n": 2}, 2)
            await store.push("q", [("a", b"again")])  # still in the queue: ignored
            claims = await store.claim("q", limit=10, lease_s=60)
            assert [claim.item_id for claim in claims] == ["b", "c"]
            assert await store.ack("q", [held.receipt]) == {held.receipt}
            assert await store.renew("q", [c.receipt for c in claims], lease_s=0) == {
                c.receipt for c in claims
            }
        with SqliteStore(path) as store:
            again = await store.claim("q", limit=10, lease_s=60)
            assert [(c.item_id, c.deliveries) for c in again] == [("b", 2), ("c", 2)]

    async def test_receipts_shaped_like_real_ones_match_nothing(self, tmp_path: Path) -> None:
        with SqliteStore(tmp_path / "s.db") as store:
            await store.push("q", [("a", b"a")])
            [claim] = await store.claim("q", limit=1, lease_s=60)
            token, _, seq = claim.receipt.rpartition("-")
            forged = [f"{token}-{int(seq) + 1}", f"other-{seq}", f"x-{10**30}"]
            assert await store.renew("q", forged, lease_s=0) == set()
            assert await store.ack("q", forged) == set()
            assert await store.ack("q", [claim.receipt, claim.receipt]) == {claim.receipt}

    def test_threads_share_one_store(self, tmp_path: Path) -> None:
        ids = [f"item-{n:03d}" for n in range(300)]
        claimed: list[list[str]] = [[] for _ in range(4)]
        with SqliteStore(tmp_path / "s.db") as store:
            anyio.run(store.push, "q", [(item_id, b"") for item_id in ids])

            async def drain(mine: list[str]) -> None:
                while claims := await store.claim("q", limit=3, lease_s=60):
                    mine.extend(claim.item_id for claim in claims)
                    await store.ack("q", [claim.receipt for claim in claims])

            threads = [threading.Thread(target=anyio.run, args=(drain, mine)) for mine in claimed]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert Counter(item for mine in claimed for item in mine) == Counter(ids)

    async def test_full_disk_says_to_free_space(self, tmp_path: Path) -> None:
        path = tmp_path / "s.db"
        with SqliteStore(path) as store:
            await store.put("small", {"n": 1})
            connection = store._connection  # cap the file at its size: SQLite's "disk is full"
            assert connection is not None
            [(pages,)] = connection.execute("PRAGMA page_count").fetchall()
            connection.execute(f"PRAGMA max_page_count = {pages}")
            with pytest.raises(BackendError, match="disk is full") as raised:
                await store.put("big", {"blob": b"x" * 100_000})
            assert str(path) in str(raised.value)
            assert "free disk space" in str(raised.value)
            assert await store.get("big") is None
            assert await store.get("small") is not None

    async def test_lock_held_too_long_is_a_backend_error(self, tmp_path: Path) -> None:
        path = tmp_path / "s.db"
        with SqliteStore(path, busy_timeout_s=0.1) as store:
            await store.put("k", {"n": 1})
            holder = sqlite3.connect(path, isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                with pytest.raises(TransientBackendError, match="locked by another connection"):
                    await store.put("k", {"n": 2})
                read = await store.get("k")  # readers are not blocked by a writer
                assert read is not None
                assert read.version == 1
                holder.execute("ROLLBACK")
            finally:
                holder.close()
            assert (await store.put("k", {"n": 3})).version == 2

    async def test_closed_store_says_so(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "s.db")
        store.close()
        store.close()
        with pytest.raises(BackendError, match="closed"):
            await store.get("k")

    async def test_unopenable_file_says_what_to_check(self, tmp_path: Path) -> None:
        with pytest.raises(BackendError, match="cannot be opened"):
            SqliteStore(tmp_path / "missing-dir" / "s.db")
        (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
        with pytest.raises(BackendError, match="not a burla store"):
            SqliteStore(tmp_path / "junk.db")


_CLAIMER = """
import asyncio, json, sys
from burla.backends.local.store import SqliteStore

async def main(path):
    claimed = []
    with SqliteStore(path) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        while claims := await store.claim("q", limit=5, lease_s=60):
            claimed.extend(claim.item_id for claim in claims)
            acked = await store.ack("q", [claim.receipt for claim in claims])
            assert acked == {claim.receipt for claim in claims}
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "anyio", "httpx"))
    print(json.dumps({"claimed": claimed, "loaded": loaded}))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.integration
def test_claims_from_several_processes_deliver_every_item_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    ids = [f"item-{n:03d}" for n in range(400)]

    async def fill() -> None:
        with SqliteStore(path) as store:
            await store.push("q", [(item_id, item_id.encode()) for item_id in ids])

    anyio.run(fill)
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for claimer in claimers:  # all four are up before any claims, so they race
            assert claimer.stdout is not None
            assert claimer.stdout.readline().strip() == "ready"
        outputs = [claimer.communicate("go\n", timeout=60) for claimer in claimers]
    finally:
        for claimer in claimers:
            if claimer.poll() is None:
                claimer.kill()
                claimer.wait()
    claimed: list[str] = []
    for claimer, (stdout, stderr) in zip(claimers, outputs, strict=True):
        assert claimer.returncode == 0, stderr
        report = json.loads(stdout.splitlines()[-1])
        assert report["loaded"] == []  # workers have no pydantic, anyio or httpx
        assert report["claimed"] == sorted(report["claimed"])  # oldest first, every time
        claimed.extend(report["claimed"])
    assert Counter(claimed) == Counter(ids)
