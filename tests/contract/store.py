"""StoreContract: what every Store backend must do.

A backend binds it with one fixture, `store_under_test`, that gives a StoreUnderTest,
and one class line: `class TestSqliteStore(StoreContract): ...`. Leases here are short
so that real time stays fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from burla.core.errors import ConflictError, InvalidRequestError
from burla.core.protocols import Claim, Store
from tests.contract.clocks import Advance, DrivenClock, advancer

LONG_LEASE_S = 60.0
"""A lease no test outlives."""


@dataclass(frozen=True)
class StoreUnderTest:
    store: Store
    """A fresh, empty store."""
    connect: Callable[[], Store]
    """Another client of the same data, as a second process would open it (the binding
    closes them); an in-process store answers with itself."""
    clock: DrivenClock | None = None
    """The clock the store's leases run on, when the test drives it; None for real time."""


def _ids(claims: list[Claim]) -> list[str]:
    return [claim.item_id for claim in claims]


@pytest.mark.anyio
class StoreContract:
    @pytest.fixture
    def store(self, store_under_test: StoreUnderTest) -> Store:
        return store_under_test.store

    @pytest.fixture
    def advance(self, store_under_test: StoreUnderTest) -> Advance:
        return advancer(store_under_test.clock)

    @pytest.fixture
    def connect(self, store_under_test: StoreUnderTest) -> Callable[[], Store]:
        return store_under_test.connect

    # Documents

    async def test_get_missing_is_none(self, store: Store) -> None:
        assert await store.get("no/such/key") is None

    async def test_put_get_round_trip(self, store: Store) -> None:
        data = {
            "name": "job-1",
            "count": 3,
            "ratio": 0.25,
            "done": False,
            "nothing": None,
            "payload": b"\x00\xffbytes",
            "nested": {"list": [1, "two", 3.5, None, True, b"\x01", {"deep": [b"\x02"]}]},
        }
        written = await store.put("jobs/1", data)
        assert written.key == "jobs/1"
        assert written.data == data
        assert written.version == 1
        read = await store.get("jobs/1")
        assert read is not None
        assert read.data == data
        assert read.version == 1

    async def test_versions_increase_by_one_per_put(self, store: Store) -> None:
        versions = [(await store.put("k", {"n": n})).version for n in range(3)]
        assert versions == [1, 2, 3]
        read = await store.get("k")
        assert read is not None
        assert (read.data, read.version) == ({"n": 2}, 3)

    async def test_create_only_on_existing_key_conflicts(self, store: Store) -> None:
        await store.put("k", {"owner": "first"}, if_version=0)
        with pytest.raises(ConflictError, match="k"):
            await store.put("k", {"owner": "second"}, if_version=0)
        read = await store.get("k")
        assert read is not None
        assert (read.data, read.version) == ({"owner": "first"}, 1)

    async def test_replace_needs_the_current_version(self, store: Store) -> None:
        await store.put("k", {"n": 1})
        await store.put("k", {"n": 2})
        with pytest.raises(ConflictError, match="k"):
            await store.put("k", {"n": 99}, if_version=1)
        replaced = await store.put("k", {"n": 3}, if_version=2)
        assert (replaced.data, replaced.version) == ({"n": 3}, 3)
        read = await store.get("k")
        assert read is not None
        assert (read.data, read.version) == ({"n": 3}, 3)

    async def test_replace_of_missing_key_conflicts(self, store: Store) -> None:
        with pytest.raises(ConflictError, match="k"):
            await store.put("k", {"n": 1}, if_version=1)
        assert await store.get("k") is None

    async def test_delete(self, store: Store) -> None:
        await store.put("k", {"n": 1})
        assert await store.delete("k") is True
        assert await store.get("k") is None
        assert await store.delete("k") is False

    async def test_delete_with_version(self, store: Store) -> None:
        await store.put("k", {"n": 1})
        await store.put("k", {"n": 2})
        with pytest.raises(ConflictError, match="k"):
            await store.delete("k", if_version=1)
        assert await store.get("k") is not None
        assert await store.delete("k", if_version=2) is True
        assert await store.get("k") is None
        assert await store.delete("k", if_version=2) is False

    async def test_delete_of_missing_document_is_false_for_any_valid_version(
        self, store: Store
    ) -> None:
        for if_version in (None, 0, 1, 7):
            assert await store.delete("k", if_version=if_version) is False
        with pytest.raises(InvalidRequestError, match="if_version=-1"):
            await store.delete("k", if_version=-1)  # refused as it is for a document that exists
        assert await store.get("k") is None

    async def test_key_is_recreated_at_version_one(self, store: Store) -> None:
        await store.put("k", {"n": 1})
        await store.put("k", {"n": 2})
        await store.delete("k")
        assert (await store.put("k", {"n": 3}, if_version=0)).version == 1

    async def test_put_many_writes_every_key(self, store: Store) -> None:
        await store.put("a", {"n": 0})
        written = await store.put_many({"a": {"n": 1}, "b": {"n": 2}})
        assert written == {"a", "b"}
        a, b = await store.get("a"), await store.get("b")
        assert a is not None
        assert b is not None
        assert (a.data, a.version) == ({"n": 1}, 2)
        assert (b.data, b.version) == ({"n": 2}, 1)

    async def test_put_many_create_only_first_write_wins(self, store: Store) -> None:
        await store.put("a", {"owner": "first"})
        written = await store.put_many(
            {"a": {"owner": "second"}, "b": {"owner": "second"}, "c": {"owner": "second"}},
            create_only=True,
        )
        assert written == {"b", "c"}
        a = await store.get("a")
        assert a is not None
        assert (a.data, a.version) == ({"owner": "first"}, 1)
        b = await store.get("b")
        assert b is not None
        assert b.data == {"owner": "second"}

    async def test_list_filters_by_prefix_in_key_order(self, store: Store) -> None:
        for key in ["jobs/b", "nodes/a", "jobs/a", "jobs", "jobsx", "jobs/c/1", "job"]:
            await store.put(key, {"key": key})
        docs = await store.list("jobs/")
        assert [doc.key for doc in docs] == ["jobs/a", "jobs/b", "jobs/c/1"]
        assert [doc.data["key"] for doc in docs] == ["jobs/a", "jobs/b", "jobs/c/1"]
        assert all(doc.version == 1 for doc in docs)
        assert await store.list("absent/") == []

    async def test_list_pages_with_after(self, store: Store) -> None:
        keys = [f"page/{n:02d}" for n in range(25)]
        await store.put_many({key: {"key": key} for key in reversed(keys)})
        await store.put_many({"pagf/00": {}, "pag": {}, "other/00": {}})
        seen: list[str] = []
        pages: list[int] = []
        after = ""
        for _ in range(10):  # bounded, so a store that ignores `after` fails instead of hanging
            page = await store.list("page/", after=after, limit=10)
            if not page:
                break
            pages.append(len(page))
            seen.extend(doc.key for doc in page)
            after = page[-1].key
        assert seen == keys
        assert pages == [10, 10, 5]

    async def test_list_limit(self, store: Store) -> None:
        await store.put_many({f"k/{n}": {} for n in range(5)})
        assert [doc.key for doc in await store.list("k/", limit=2)] == ["k/0", "k/1"]
        assert [doc.key for doc in await store.list("k/", after="k/3", limit=2)] == ["k/4"]

    async def test_data_is_copied_in_and_out(self, store: Store) -> None:
        data = {"inner": {"items": [1, 2]}}
        written = await store.put("k", data)
        data["inner"]["items"].append(3)
        written.data["inner"]["items"].append(4)
        read = await store.get("k")
        assert read is not None
        read.data["inner"]["items"].append(5)
        read.data["added"] = True
        [listed] = await store.list("k")
        listed.data["inner"]["items"].append(6)
        again = await store.get("k")
        assert again is not None
        assert again.data == {"inner": {"items": [1, 2]}}

    # Queues

    async def test_claim_of_empty_queue_is_empty(self, store: Store) -> None:
        assert await store.claim("q", limit=10, lease_s=LONG_LEASE_S) == []

    async def test_claim_is_fifo_and_respects_limit(self, store: Store) -> None:
        await store.push("q", [("i0", b"0"), ("i1", b"1"), ("i2", b"2")])
        await store.push("q", [("i3", b"3"), ("i4", b"4")])
        first = await store.claim("q", limit=3, lease_s=LONG_LEASE_S)
        assert _ids(first) == ["i0", "i1", "i2"]
        assert [claim.data for claim in first] == [b"0", b"1", b"2"]
        assert all(claim.deliveries == 1 for claim in first)
        assert len({claim.receipt for claim in first}) == 3
        second = await store.claim("q", limit=3, lease_s=LONG_LEASE_S)
        assert _ids(second) == ["i3", "i4"]
        assert await store.claim("q", limit=3, lease_s=LONG_LEASE_S) == []

    async def test_push_of_an_id_in_the_queue_is_ignored(self, store: Store) -> None:
        await store.push("q", [("a", b"first"), ("b", b"b")])
        await store.push("q", [("a", b"second"), ("c", b"c")])
        claims = await store.claim("q", limit=10, lease_s=LONG_LEASE_S)
        assert [(claim.item_id, claim.data) for claim in claims] == [
            ("a", b"first"),
            ("b", b"b"),
            ("c", b"c"),
        ]
        await store.push("q", [("a", b"third")])  # still in the queue, though leased
        assert await store.claim("q", limit=10, lease_s=LONG_LEASE_S) == []

    async def test_ack_removes(self, store: Store, advance: Advance) -> None:
        await store.push("q", [("a", b"a"), ("b", b"b")])
        claims = await store.claim("q", limit=10, lease_s=0.2)
        acked = await store.ack("q", [claim.receipt for claim in claims])
        assert acked == {claim.receipt for claim in claims}
        await advance(0.4)
        assert await store.claim("q", limit=10, lease_s=LONG_LEASE_S) == []
        assert await store.ack("q", [claim.receipt for claim in claims]) == set()

    async def test_pushed_again_after_ack_is_a_new_item(self, store: Store) -> None:
        await store.push("q", [("a", b"first")])
        [claim] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        await store.ack("q", [claim.receipt])
        await store.push("q", [("a", b"second")])
        [again] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert (again.item_id, again.data, again.deliveries) == ("a", b"second", 1)

    async def test_expired_lease_delivers_again(self, store: Store, advance: Advance) -> None:
        await store.push("q", [("a", b"a")])
        [first] = await store.claim("q", limit=1, lease_s=0.2)
        assert await store.claim("q", limit=1, lease_s=0.2) == []
        await advance(0.4)
        [second] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert (second.item_id, second.data, second.deliveries) == ("a", b"a", 2)
        assert second.receipt != first.receipt
        assert second.lease_expires > first.lease_expires

    async def test_expired_item_keeps_its_place(self, store: Store, advance: Advance) -> None:
        await store.push("q", [("a", b"a")])
        await store.claim("q", limit=1, lease_s=0.2)
        await store.push("q", [("b", b"b")])
        await advance(0.4)
        claims = await store.claim("q", limit=10, lease_s=LONG_LEASE_S)
        assert [(claim.item_id, claim.deliveries) for claim in claims] == [("a", 2), ("b", 1)]

    async def test_stale_receipt_does_not_ack(self, store: Store, advance: Advance) -> None:
        await store.push("q", [("a", b"a")])
        [first] = await store.claim("q", limit=1, lease_s=0.2)
        await advance(0.4)
        [second] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert await store.ack("q", [first.receipt]) == set()
        assert await store.renew("q", [first.receipt], lease_s=0) == set()
        assert await store.claim("q", limit=1, lease_s=LONG_LEASE_S) == []
        assert await store.ack("q", [second.receipt]) == {second.receipt}

    async def test_expired_receipt_acks_until_reclaimed(
        self, store: Store, advance: Advance
    ) -> None:
        await store.push("q", [("a", b"a")])
        [claim] = await store.claim("q", limit=1, lease_s=0.2)
        await advance(0.4)
        assert await store.ack("q", [claim.receipt]) == {claim.receipt}
        assert await store.claim("q", limit=1, lease_s=LONG_LEASE_S) == []

    async def test_renew_keeps_the_lease(self, store: Store, advance: Advance) -> None:
        await store.push("q", [("a", b"a")])
        [claim] = await store.claim("q", limit=1, lease_s=0.4)
        await advance(0.2)
        assert await store.renew("q", [claim.receipt], lease_s=1.0) == {claim.receipt}
        await advance(0.4)  # past the first lease, well inside the renewed one
        assert await store.claim("q", limit=1, lease_s=LONG_LEASE_S) == []
        await advance(1.0)
        [again] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert (again.item_id, again.deliveries) == ("a", 2)

    async def test_renew_after_expiry_before_reclaim_keeps_the_item(
        self, store: Store, advance: Advance
    ) -> None:
        await store.push("q", [("a", b"a"), ("b", b"b")])
        [b_first] = (await store.claim("q", limit=2, lease_s=0.2))[1:]
        await advance(0.4)
        [a_again] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert a_again.item_id == "a"
        assert await store.renew("q", [b_first.receipt], lease_s=LONG_LEASE_S) == {b_first.receipt}
        assert await store.claim("q", limit=10, lease_s=LONG_LEASE_S) == []
        assert await store.ack("q", [b_first.receipt]) == {b_first.receipt}

    async def test_renew_to_zero_hands_back_at_once(self, store: Store) -> None:
        await store.push("q", [("a", b"a"), ("b", b"b")])
        claims = await store.claim("q", limit=2, lease_s=LONG_LEASE_S)
        assert await store.renew("q", [claims[0].receipt], lease_s=0) == {claims[0].receipt}
        [again] = await store.claim("q", limit=10, lease_s=LONG_LEASE_S)
        assert (again.item_id, again.deliveries) == ("a", 2)
        assert again.receipt != claims[0].receipt

    async def test_a_receipt_handed_back_is_no_longer_current(self, store: Store) -> None:
        """A holder's renew that comes after its item was handed back (main_service put
        it back for others) must not lease it again for no one."""
        await store.push("q", [("a", b"a"), ("b", b"b")])
        claims = await store.claim("q", limit=2, lease_s=LONG_LEASE_S)
        handed_back = claims[0].receipt
        assert await store.renew("q", [handed_back], lease_s=0) == {handed_back}
        assert await store.renew("q", [handed_back], lease_s=LONG_LEASE_S) == set()
        assert await store.renew("q", [handed_back], lease_s=0) == set()
        assert await store.ack("q", [handed_back]) == set()
        [again] = await store.claim("q", limit=10, lease_s=LONG_LEASE_S)
        assert (again.item_id, again.deliveries) == ("a", 2)
        assert await store.ack("q", [again.receipt]) == {again.receipt}
        assert await store.renew("q", [claims[1].receipt], lease_s=1.0) == {claims[1].receipt}

    async def test_queues_are_independent(self, store: Store) -> None:
        await store.push("q1", [("a", b"q1")])
        await store.push("q2", [("a", b"q2"), ("b", b"q2")])
        [in_q1] = await store.claim("q1", limit=10, lease_s=LONG_LEASE_S)
        assert in_q1.data == b"q1"
        assert await store.ack("q2", [in_q1.receipt]) == set()
        assert await store.ack("q1", [in_q1.receipt]) == {in_q1.receipt}
        in_q2 = await store.claim("q2", limit=10, lease_s=LONG_LEASE_S)
        assert [(claim.item_id, claim.data) for claim in in_q2] == [("a", b"q2"), ("b", b"q2")]

    async def test_concurrent_claimers_share_without_overlap(self, store: Store) -> None:
        ids = [f"item-{n:03d}" for n in range(200)]
        await store.push("q", [(item_id, item_id.encode()) for item_id in ids])
        claimed: list[str] = []

        async def claimer() -> None:
            while True:
                claims = await store.claim("q", limit=3, lease_s=LONG_LEASE_S)
                if not claims:
                    return
                claimed.extend(claim.item_id for claim in claims)
                assert all(claim.data == claim.item_id.encode() for claim in claims)
                await anyio.lowlevel.checkpoint()
                await store.ack("q", [claim.receipt for claim in claims])

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(claimer)
        assert Counter(claimed) == Counter(ids)

    async def test_expired_items_come_back_in_push_order(
        self, store: Store, advance: Advance
    ) -> None:
        await store.push("q", [(f"{n:04d}", b"") for n in range(1200)])
        first = await store.claim("q", limit=1150, lease_s=1)
        await advance(2)  # every lease passes; a third of them are acked anyway
        await store.ack("q", [claim.receipt for claim in first[::3]])
        seen: list[str] = []  # more leases handed back at once than one batch of most stores
        while claims := await store.claim("q", limit=150, lease_s=LONG_LEASE_S):
            seen.extend(_ids(claims))
            await store.ack("q", [claim.receipt for claim in claims])
        expected = [n for n in range(1150) if n % 3] + list(range(1150, 1200))
        assert seen == [f"{n:04d}" for n in expected]

    async def test_receipts_never_handed_out_match_nothing(self, store: Store) -> None:
        await store.push("q", [("a", b"a")])
        [claim] = await store.claim("q", limit=1, lease_s=LONG_LEASE_S)
        forged = ["", "nonsense", f"{claim.receipt}0", claim.receipt[:-1]]
        assert await store.renew("q", forged, lease_s=0) == set()
        assert await store.ack("q", forged) == set()
        assert await store.ack("q", [claim.receipt, claim.receipt]) == {claim.receipt}

    # Values and arguments

    async def test_values_round_trip_exactly(self, store: Store) -> None:
        data: dict[str, Any] = {
            "raw": bytes(range(256)),
            "empty": b"",
            "text": "h\u00e9llo \U0001f600",
            "numbers": [2**100, -(2**63) - 1, -(2**63), 2**63 - 1, -0.0, 1e-310, 0.1 + 0.2, 1.0, 1],
            "flag": True,
            "zero": 0,
            "lists": [[1, [2, []]], [], [[b"\x00"]], [{"in": [[None]]}]],
            "": "an empty field name",
            "__reserved__": {"a.b": 1, "`tick`": 2, "x y": [], "\u00e9\U0001f600": {}},
            # Fields named like the tags backends encode bytes and odd values with.
            "$bytes": "a field, not a tag",
            "$b": "a field, not a tag",
            "$d": [["a", 1]],
            "$$dollars": {"$bytes": b"\xff"},
            "looks_like_bytes": {"$bytes": "AAAA", "$b": "AAAA"},
            "looks_like_a_dict": {"$d": [["x", b"\xff"]]},
            "$": {"$list": [1], "$int": "7", "$$": None, "__name__": True, "__": 1},
            "nested": [{"$": {"$$": [b"\x00"]}}, [], {}, [[1, [2, []]]]],
        }
        assert (await store.put("k", data)).data == data
        read = await store.get("k")
        assert read is not None
        assert read.data == data
        assert [type(value) for value in read.data["numbers"][-5:]] == [float] * 4 + [int]
        assert (type(read.data["flag"]), type(read.data["zero"])) == (bool, int)
        assert isinstance(read.data["looks_like_bytes"], dict)
        assert await store.put_many({"m": data}) == {"m"}
        [listed] = await store.list("m")
        assert listed.data == data
        await store.put("k", {"nested": {}})  # a put replaces the fields; it merges nothing
        await store.put_many({"m": {}})
        assert [(doc.key, doc.data) for doc in await store.list("")] == [
            ("k", {"nested": {}}),
            ("m", {}),
        ]

    async def test_list_prefix_edges(self, store: Store) -> None:
        top = "\U0010ffff"
        keys = ["a", f"a{top}", f"a{top}z", f"a{top}{top}", "b", "\ue000", "\ud7ff"]
        await store.put_many({key: {} for key in keys})
        assert [doc.key for doc in await store.list(f"a{top}")] == [
            f"a{top}",
            f"a{top}z",
            f"a{top}{top}",
        ]
        assert [doc.key for doc in await store.list("")] == sorted(keys)
        assert [doc.key for doc in await store.list("\ud7ff")] == ["\ud7ff"]
        assert [doc.key for doc in await store.list("", after="b")] == ["\ud7ff", "\ue000"]
        assert await store.list("a", limit=0) == []

    async def test_invalid_requests_write_nothing(self, store: Store) -> None:
        with pytest.raises(InvalidRequestError, match=r"document 'k'\.when is a tuple"):
            await store.put("k", {"when": (1, 2)})
        with pytest.raises(InvalidRequestError, match=r"document 'b'\.n is a set"):
            await store.put_many({"a": {"n": 1}, "b": {"n": {1, 2}}})
        assert await store.list("") == []
        with pytest.raises(InvalidRequestError, match="bytes"):
            await store.push("q", [("a", b"a"), ("b", "not bytes")])  # type: ignore[list-item]
        assert await store.claim("q", limit=10, lease_s=LONG_LEASE_S) == []
        with pytest.raises(InvalidRequestError, match="if_version=-1"):
            await store.put("k", {}, if_version=-1)
        with pytest.raises(InvalidRequestError, match="limit"):
            await store.list("", limit=-1)
        with pytest.raises(InvalidRequestError, match="limit"):
            await store.claim("q", limit=-1, lease_s=1)
        with pytest.raises(InvalidRequestError, match="lease_s"):
            await store.claim("q", limit=1, lease_s=-1)
        with pytest.raises(InvalidRequestError, match="lease_s"):
            await store.renew("q", [], lease_s=-1)
        assert await store.list("") == []
        await store.put("k", {"n": 1})
        with pytest.raises(InvalidRequestError, match="if_version=-1"):
            await store.delete("k", if_version=-1)
        assert [(doc.key, doc.version) for doc in await store.list("")] == [("k", 1)]

    # Clients of the same data

    async def test_another_client_sees_writes_and_shares_the_queue(
        self, store: Store, connect: Callable[[], Store]
    ) -> None:
        other = connect()
        await store.put("jobs/1", {"state": "running"})
        read = await other.get("jobs/1")
        assert read is not None
        assert (read.data, read.version) == ({"state": "running"}, 1)
        await other.put("jobs/1", {"state": "done"}, if_version=1)
        with pytest.raises(ConflictError, match="jobs/1"):
            await store.put("jobs/1", {"state": "lost"}, if_version=1)
        await store.push("q", [("a", b"a"), ("b", b"b")])
        [claim] = await other.claim("q", limit=1, lease_s=LONG_LEASE_S)
        assert claim.item_id == "a"
        [held] = await store.claim("q", limit=5, lease_s=LONG_LEASE_S)
        assert held.item_id == "b"
        assert await store.ack("q", [claim.receipt]) == {claim.receipt}
        assert await other.renew("q", [held.receipt], lease_s=0) == {held.receipt}
        [again] = await store.claim("q", limit=5, lease_s=LONG_LEASE_S)
        assert (again.item_id, again.deliveries) == ("b", 2)

    async def test_claimers_on_separate_clients_get_each_item_once(
        self, store: Store, connect: Callable[[], Store]
    ) -> None:
        ids = [f"item-{n:03d}" for n in range(300)]
        await store.push("q", [(item_id, item_id.encode()) for item_id in ids])
        clients = [store] + [connect() for _ in range(3)]
        claimed: list[str] = []

        async def drain(client: Store, limit: int) -> None:
            while claims := await client.claim("q", limit=limit, lease_s=LONG_LEASE_S):
                assert _ids(claims) == sorted(_ids(claims))  # oldest first, every time
                assert all(claim.data == claim.item_id.encode() for claim in claims)
                assert all(claim.deliveries == 1 for claim in claims)
                claimed.extend(_ids(claims))
                await anyio.lowlevel.checkpoint()
                acked = await client.ack("q", [claim.receipt for claim in claims])
                assert acked == {claim.receipt for claim in claims}

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for index, client in enumerate(clients):  # four clients, three tasks each
                    for limit in (1, 5, 20):
                        group.start_soon(drain, client, limit + index)
        assert Counter(claimed) == Counter(ids)

    async def test_version_race_has_one_winner(
        self, store: Store, connect: Callable[[], Store]
    ) -> None:
        clients = [store] + [connect() for _ in range(3)]
        await store.put("k", {"n": 0})
        outcomes: list[str] = []

        async def replace(client: Store, n: int) -> None:
            try:
                await client.put("k", {"n": n}, if_version=1)
                outcomes.append("won")
            except ConflictError:
                outcomes.append("lost")

        async with anyio.create_task_group() as group:
            for n, client in enumerate(clients):
                group.start_soon(replace, client, n)
        assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
        read = await store.get("k")
        assert read is not None
        assert read.version == 2
