"""StoreContract: what every Store backend must do, bound per backend in test_<backend>.py.

A binding provides two fixtures: `store`, a fresh empty Store, and `advance`, an
`async (seconds) -> None` that moves the store's clock forward (a ManualClock for memory,
a real sleep for a real database). Leases here are short so real time stays fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from burla.core.errors import ConflictError
from burla.core.protocols import Claim, Store

Advance = Callable[[float], Awaitable[None]]

LONG_LEASE_S = 60.0
"""A lease no test outlives."""


def _ids(claims: list[Claim]) -> list[str]:
    return [claim.item_id for claim in claims]


@pytest.mark.anyio
class StoreContract:
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
