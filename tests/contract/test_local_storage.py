"""The contract suites bound to SqliteStore and DirectoryBlobStore, and what only they must do."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from burla.backends.local.blobs import DirectoryBlobStore
from burla.backends.local.store import SqliteStore
from burla.core.clock import ManualClock
from burla.core.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SignedUrlError,
    TransientBackendError,
)
from tests.contract.blobstore import (
    Advance,
    BlobStoreContract,
    Transfer,
    self_signed_transfer,
)
from tests.contract.store import StoreContract
from tests.small_disk import small_disk

SECRET = b"local-test-secret"


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        with SqliteStore(tmp_path / "store.db") as store:
            yield store

    @pytest.fixture
    def advance(self) -> Advance:
        async def advance(seconds: float) -> None:
            await anyio.sleep(seconds)  # the store reads the wall clock, as in a real cluster

        return advance


class TestDirectoryBlobStore(BlobStoreContract):
    enforces_signatures = True

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(start=1_000_000.0)

    @pytest.fixture
    def blobs(self, tmp_path: Path, clock: ManualClock) -> DirectoryBlobStore:
        return DirectoryBlobStore(tmp_path / "blobs", SECRET, clock)

    @pytest.fixture
    def advance(self, clock: ManualClock) -> Advance:
        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        return advance

    @pytest.fixture
    def transfer(self, blobs: DirectoryBlobStore) -> Transfer:
        return self_signed_transfer(blobs)


# What only the SQLite store must do.


@pytest.mark.anyio
class TestSqliteStoreOnly:
    async def test_two_stores_on_one_file_see_each_others_writes(self, tmp_path: Path) -> None:
        with SqliteStore(tmp_path / "s.db") as one, SqliteStore(tmp_path / "s.db") as two:
            await one.put("jobs/1", {"state": "running"})
            read = await two.get("jobs/1")
            assert read is not None
            assert (read.data, read.version) == ({"state": "running"}, 1)
            await two.put("jobs/1", {"state": "done"}, if_version=1)
            with pytest.raises(ConflictError, match="jobs/1"):
                await one.put("jobs/1", {"state": "lost"}, if_version=1)
            await one.push("q", [("a", b"a"), ("b", b"b")])
            [claim] = await two.claim("q", limit=1, lease_s=60)
            assert claim.item_id == "a"
            [other] = await one.claim("q", limit=5, lease_s=60)
            assert other.item_id == "b"
            assert await one.ack("q", [claim.receipt]) == {claim.receipt}
            assert await two.renew("q", [other.receipt], lease_s=0) == {other.receipt}
            [again] = await one.claim("q", limit=5, lease_s=60)
            assert (again.item_id, again.deliveries) == ("b", 2)

    async def test_bytes_and_dollar_fields_round_trip_exactly(self, tmp_path: Path) -> None:
        data = {
            "raw": bytes(range(256)),
            "empty": b"",
            "$bytes": "a field, not a tag",
            "$$dollars": {"$bytes": b"\xff"},
            "looks_like_a_tag": {"$bytes": "AAAA"},
            "text": "h\u00e9llo \U0001f600 \ud800",
            "numbers": [2**100, -0.0, 1e-310, 0.1 + 0.2],
        }
        with SqliteStore(tmp_path / "s.db") as store:
            assert (await store.put("k", data)).data == data
            read = await store.get("k")
            assert read is not None
            assert read.data == data
            assert isinstance(read.data["looks_like_a_tag"], dict)
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

    async def test_receipts_never_handed_out_match_nothing(self, tmp_path: Path) -> None:
        with SqliteStore(tmp_path / "s.db") as store:
            await store.push("q", [("a", b"a")])
            [claim] = await store.claim("q", limit=1, lease_s=60)
            token, _, seq = claim.receipt.rpartition("-")
            forged = ["", "nonsense", f"{token}-{int(seq) + 1}", f"other-{seq}", f"x-{10**30}"]
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

    async def test_expired_items_come_back_in_push_order(self, tmp_path: Path) -> None:
        clock = ManualClock(start=1_000.0)
        with SqliteStore(tmp_path / "s.db", clock) as store:
            await store.push("q", [(f"{n:05d}", b"") for n in range(3000)])
            first = await store.claim("q", limit=1500, lease_s=1)
            clock.advance(2)  # every lease has passed; half of them are acked anyway
            await store.ack("q", [claim.receipt for claim in first[::2]])
            seen: list[str] = []
            while claims := await store.claim("q", limit=100, lease_s=60):
                seen.extend(claim.item_id for claim in claims)
                await store.ack("q", [claim.receipt for claim in claims])
            expected = [f"{n:05d}" for n in range(1, 1500, 2)] + [
                f"{n:05d}" for n in range(1500, 3000)
            ]
            assert seen == expected

    async def test_list_prefix_edges(self, tmp_path: Path) -> None:
        top = "\U0010ffff"
        keys = ["a", f"a{top}", f"a{top}z", f"a{top}{top}", "b", "\ue000"]
        with SqliteStore(tmp_path / "s.db") as store:
            await store.put_many({key: {} for key in keys})
            assert [d.key for d in await store.list(f"a{top}")] == [
                f"a{top}",
                f"a{top}z",
                f"a{top}{top}",
            ]
            assert [d.key for d in await store.list("")] == sorted(keys)
            assert [d.key for d in await store.list("\ud7ff")] == []
            assert await store.list("a", limit=0) == []

    async def test_invalid_requests_write_nothing(self, tmp_path: Path) -> None:
        with SqliteStore(tmp_path / "s.db") as store:
            with pytest.raises(InvalidRequestError, match=r"document 'b'\.n is a set"):
                await store.put_many({"a": {"n": 1}, "b": {"n": {1, 2}}})
            with pytest.raises(InvalidRequestError, match="tuple"):
                await store.put("k", {"when": (1, 2)})
            assert await store.list("") == []
            with pytest.raises(InvalidRequestError, match="bytes"):
                await store.push("q", [("a", b"a"), ("b", "not bytes")])  # type: ignore[list-item]
            assert await store.claim("q", limit=10, lease_s=60) == []
            with pytest.raises(InvalidRequestError, match="limit"):
                await store.list("", limit=-1)
            with pytest.raises(InvalidRequestError, match="limit"):
                await store.claim("q", limit=-1, lease_s=1)
            with pytest.raises(InvalidRequestError, match="lease_s"):
                await store.claim("q", limit=1, lease_s=-1)
            with pytest.raises(InvalidRequestError, match="lease_s"):
                await store.renew("q", [], lease_s=-1)
            with pytest.raises(InvalidRequestError, match="if_version"):
                await store.put("k", {}, if_version=-1)

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


# What only the directory blob store must do.


def _paths_under(root: Path) -> list[str]:
    """Every file and directory below `root`, relative to it, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.anyio
class TestDirectoryBlobStoreOnly:
    async def test_stores_on_one_root_share_blobs(self, tmp_path: Path) -> None:
        one = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        two = DirectoryBlobStore(tmp_path / "blobs" / ".." / "blobs", SECRET)
        await one.put("jobs/1/function.pkl", b"\x80\x05pickled")
        assert await two.get("jobs/1/function.pkl") == b"\x80\x05pickled"
        assert await two.list("jobs/") == ["jobs/1/function.pkl"]
        assert (
            tmp_path / "blobs" / "jobs" / "1" / "function.pkl"
        ).read_bytes() == b"\x80\x05pickled"
        assert await two.delete_prefix("jobs/") == 1
        with pytest.raises(NotFoundError, match=r"jobs/1/function\.pkl"):
            await one.get("jobs/1/function.pkl")

    async def test_urls_are_checked_by_any_store_with_the_secret(self, tmp_path: Path) -> None:
        signer = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        checker = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        stranger = DirectoryBlobStore(tmp_path / "blobs", b"another secret")
        elsewhere = DirectoryBlobStore(tmp_path / "other", SECRET)
        put_url = await signer.signed_url("inputs/0.pkl", method="PUT", expires_s=60)
        assert put_url.startswith(f"file://{signer.root}/inputs/0.pkl?method=PUT&expires=")
        await checker.put_signed(put_url, b"uploaded")
        get_url = await signer.signed_url("inputs/0.pkl", method="GET", expires_s=60)
        assert await checker.get_signed(get_url) == b"uploaded"
        with pytest.raises(SignedUrlError, match="signature"):
            await stranger.get_signed(get_url)
        with pytest.raises(SignedUrlError, match="outside this store's directory"):
            await elsewhere.get_signed(get_url)
        with pytest.raises(SignedUrlError, match="not a file://"):
            await checker.get_signed("https://example.invalid/inputs/0.pkl")

    async def test_odd_keys_survive_signed_urls(self, tmp_path: Path) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        key = "dir/a file?with&odd=chars#%20\u00e9"
        url = await blobs.signed_url(key, method="PUT", expires_s=60)
        await blobs.put_signed(url, b"data")
        assert await blobs.list("dir/") == [key]
        assert await blobs.get(key) == b"data"

    @pytest.mark.parametrize(
        "key",
        ["..", "../escape", "a/../../escape", "/etc/passwd", "a//b", "a/", "./a", "", "a/\x00"],
    )
    async def test_keys_that_could_leave_the_root_are_refused(
        self, tmp_path: Path, key: str
    ) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.put(key, b"x")
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.get(key)
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.signed_url(key, method="PUT", expires_s=60)
        assert _paths_under(tmp_path) == ["blobs"]

    async def test_prefixes_that_leave_the_root_match_nothing(self, tmp_path: Path) -> None:
        (tmp_path / "outside").write_bytes(b"not a blob")
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        await blobs.put("a..b", b"x")
        assert await blobs.list("../") == []
        assert await blobs.delete_prefix("../") == 0
        assert await blobs.list("a..") == ["a..b"]
        assert (tmp_path / "outside").exists()

    async def test_delete_prefix_removes_emptied_directories(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        blobs = DirectoryBlobStore(root, SECRET)
        for key in ["jobs/1/in/0", "jobs/1/in/1", "jobs/1/fn", "jobs/2/fn"]:
            await blobs.put(key, b"x")
        assert await blobs.delete_prefix("jobs/1") == 3
        assert _paths_under(root) == ["jobs", "jobs/2", "jobs/2/fn"]
        assert await blobs.delete_prefix("") == 1
        assert _paths_under(tmp_path) == ["blobs"]  # the root itself stays

    async def test_a_key_cannot_be_a_blob_and_a_folder(self, tmp_path: Path) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        await blobs.put("a", b"blob")
        with pytest.raises(ConflictError, match="'a/b'"):
            await blobs.put("a/b", b"x")
        await blobs.put("x/y", b"blob")
        with pytest.raises(ConflictError, match="'x'"):
            await blobs.put("x", b"x")
        with pytest.raises(NotFoundError):
            await blobs.get("x")
        assert await blobs.list("") == ["a", "x/y"]

    async def test_full_disk_names_the_directory_and_leaves_nothing(self, tmp_path: Path) -> None:
        with small_disk(tmp_path / "blobs", "1m") as root:
            blobs = DirectoryBlobStore(root, SECRET)
            await blobs.put("jobs/1/fn", b"old")
            with pytest.raises(BackendError, match="disk that holds") as raised:
                await blobs.put("jobs/1/fn", b"new" * (1 << 20))
            assert str(root) in str(raised.value)
            assert "free disk space" in str(raised.value)
            assert _paths_under(root) == ["jobs", "jobs/1", "jobs/1/fn"]  # no partial file
            assert await blobs.get("jobs/1/fn") == b"old"
            await blobs.put("jobs/1/fn", b"new")  # it goes on once there is room
            assert await blobs.get("jobs/1/fn") == b"new"

    async def test_too_long_a_key_is_refused(self, tmp_path: Path) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        with pytest.raises(InvalidRequestError, match="shorter key"):
            await blobs.put("a" * 300, b"x")
        assert await blobs.list("") == []

    async def test_partial_files_are_not_blobs(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        blobs = DirectoryBlobStore(root, SECRET)
        await blobs.put("jobs/fn", b"x")
        (root / "jobs" / ".burla-partial-fn.0123").write_bytes(b"half")
        assert await blobs.list("") == ["jobs/fn"]
        with pytest.raises(InvalidRequestError, match="reserved"):
            await blobs.put("jobs/.burla-partial-fn.0123", b"x")
