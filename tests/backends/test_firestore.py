"""What only the Firestore store does, on the official emulator: namespaces, claimers
racing to hand back expired leases, keys and names Firestore's paths cannot hold as they
are, calls larger than one commit, and what it says of what it cannot store, an
unreachable emulator and a closed store."""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Any

import anyio
import pytest

from burla.backends.gcp.firestore_store import FirestoreStore
from burla.core.clock import ManualClock
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import Claim
from tests.components.firestore import FirestoreEmulator


def _namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class _Colour(StrEnum):
    RED = "red"


@pytest.fixture
async def make_store(
    firestore_emulator: FirestoreEmulator,
) -> AsyncIterator[Callable[..., FirestoreStore]]:
    """Stores on the emulator, each with its own client (its own connection), all closed
    at the end."""
    made: list[FirestoreStore] = []

    def make(namespace: str | None = None, **options: Any) -> FirestoreStore:
        store = FirestoreStore(
            firestore_emulator.project,
            namespace or _namespace(),
            client=firestore_emulator.client(),
            **options,
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.mark.anyio
@pytest.mark.integration
class TestFirestoreStoreOnly:
    async def test_namespaces_are_isolated(self, make_store: Callable[..., FirestoreStore]) -> None:
        one, two = make_store(), make_store()
        await one.put("jobs/1", {"owner": "one"})
        await two.put("jobs/1", {"owner": "two"}, if_version=0)
        await one.push("q", [("a", b"one")])
        await two.push("q", [("a", b"two"), ("b", b"two")])
        [claim] = await one.claim("q", limit=10, lease_s=60)
        assert claim.data == b"one"
        assert await two.ack("q", [claim.receipt]) == set()
        assert [c.data for c in await two.claim("q", limit=10, lease_s=60)] == [b"two", b"two"]
        assert [doc.data for doc in await one.list("")] == [{"owner": "one"}]
        again = make_store(one.namespace)  # the same namespace, another connection
        read = await again.get("jobs/1")
        assert read is not None
        assert (read.data, read.version) == ({"owner": "one"}, 1)
        assert await again.ack("q", [claim.receipt]) == {claim.receipt}

    async def test_claimers_racing_to_hand_back_expired_leases_share_nothing(
        self, make_store: Callable[..., FirestoreStore]
    ) -> None:
        clock = ManualClock(start=1_000.0)
        stores = [make_store(clock=clock)]
        stores += [make_store(stores[0].namespace, clock=clock) for _ in range(2)]
        ids = [f"{n:03d}" for n in range(90)]
        await stores[0].push("q", [(item_id, b"") for item_id in ids])

        async def drain_all() -> list[Claim]:
            claimed: list[Claim] = []

            async def drain(store: FirestoreStore, limit: int) -> None:
                while claims := await store.claim("q", limit=limit, lease_s=5):
                    claimed.extend(claims)

            async with anyio.create_task_group() as group:
                for store in stores:
                    for limit in (4, 9):
                        group.start_soon(drain, store, limit)
            return claimed

        first = await drain_all()
        assert sorted(claim.item_id for claim in first) == ids
        clock.advance(10)  # every lease passes: each claimer starts by handing them all back
        second = await drain_all()
        assert sorted(claim.item_id for claim in second) == ids
        assert {claim.deliveries for claim in second} == {2}
        assert await stores[1].ack("q", [claim.receipt for claim in first]) == set()
        assert await stores[2].ack("q", [claim.receipt for claim in second]) == {
            claim.receipt for claim in second
        }

    async def test_enums_become_text_and_infinity_stays_a_float(
        self, make_store: Callable[..., FirestoreStore]
    ) -> None:
        data = {"colour": _Colour.RED, "floats": [float("inf"), -0.0]}
        store = make_store()
        expected = {"colour": "red", "floats": [float("inf"), -0.0]}
        assert (await store.put("k", data)).data == expected
        read = await store.get("k")
        assert read is not None
        assert read.data == expected
        assert type(read.data["colour"]) is str
        assert [type(value) for value in read.data["floats"]] == [float, float]
        assert await store.put_many({"m": data}) == {"m"}
        [listed] = await store.list("m")
        assert listed.data == expected

    async def test_odd_keys_queue_names_and_item_ids(
        self, make_store: Callable[..., FirestoreStore]
    ) -> None:
        keys = [
            "",
            ".",
            "..",
            "__x__",
            "%",
            "%2F",
            "/",
            "a/b",
            "a%2Fb",
            "a/",
            "a//b",
            "\u00e9/\U0001f600",
        ]
        store = make_store()
        for key in keys:
            await store.put(key, {"key": key}, if_version=0)
        assert await store.get("") is not None  # listed by no prefix: nothing sorts before ""
        assert [(doc.key, doc.data["key"]) for doc in await store.list("")] == [
            (key, key) for key in sorted(keys)[1:]
        ]
        assert [doc.key for doc in await store.list("a/")] == ["a/", "a//b", "a/b"]
        for key in keys:
            assert await store.delete(key, if_version=1) is True
        assert await store.list("") == []
        for queue in keys:
            await store.push(queue, [(item_id, item_id.encode()) for item_id in keys])
        for queue in keys:
            claims = await store.claim(queue, limit=100, lease_s=60)
            assert [(c.item_id, c.data) for c in claims] == [(i, i.encode()) for i in keys]
            assert await store.ack(queue, [c.receipt for c in claims]) == {
                c.receipt for c in claims
            }

    async def test_more_than_one_batch(self, make_store: Callable[..., FirestoreStore]) -> None:
        store = make_store()
        keys = [f"doc/{n:04d}" for n in range(1200)]
        await store.put_many({key: {"n": 1} for key in keys[::3]})
        written = await store.put_many({key: {"n": 2} for key in keys}, create_only=True)
        assert written == set(keys) - set(keys[::3])
        assert await store.put_many({key: {"n": 3} for key in keys[:700]}) == set(keys[:700])
        seen: list[tuple[str, int, int]] = []
        after = ""
        while page := await store.list("doc/", after=after, limit=500):
            seen.extend((doc.key, doc.data["n"], doc.version) for doc in page)
            after = page[-1].key
        assert [key for key, _, _ in seen] == keys
        assert Counter((n, version) for _, n, version in seen) == Counter(
            {(3, 2): 700, (2, 1): 500 - 166, (1, 1): 166}  # 166 of keys[::3] are past 700
        )
        await store.push("q", [(f"{n:04d}", b"x" * 4_000) for n in range(1200)])
        await store.push("q", [(f"{n:04d}", b"again") for n in range(0, 1300, 2)])
        ids = [c.item_id for c in await store.claim("q", limit=2000, lease_s=60)]
        assert ids == [f"{n:04d}" for n in range(1200)] + [f"{n:04d}" for n in range(1200, 1300, 2)]

    async def test_receipts_shaped_like_real_ones_match_nothing(
        self, make_store: Callable[..., FirestoreStore]
    ) -> None:
        store = make_store()
        await store.push("q", [("a", b"a")])
        [claim] = await store.claim("q", limit=1, lease_s=60)
        token, _, item = claim.receipt.partition(":")
        forged = [f"{'0' * 32}:{item}", f"{token}:b", f"{token}:a/b", f"{token}:.."]
        forged += [f"{token}:__x__", f"{token}:", 7, None]  # type: ignore[list-item]
        assert await store.renew("q", forged, lease_s=0) == set()
        assert await store.ack("q", forged) == set()
        assert await store.ack("q", [claim.receipt, claim.receipt]) == {claim.receipt}

    async def test_what_firestore_cannot_hold_is_refused(
        self, make_store: Callable[..., FirestoreStore]
    ) -> None:
        store = make_store()
        with pytest.raises(InvalidRequestError, match="Unicode"):
            await store.put("k", {"text": "\ud800"})
        with pytest.raises(InvalidRequestError, match="Unicode"):
            await store.put("\ud800", {})
        with pytest.raises(InvalidRequestError, match="1 MiB"):
            await store.put("k", {"big": b"x" * 1_100_000})
        deep: dict[str, Any] = {}
        for _ in range(30):
            deep = {"d": deep}
        with pytest.raises(InvalidRequestError, match="20 levels"):
            await store.put("k", deep)
        assert await store.list("") == []
        with pytest.raises(InvalidRequestError, match="namespace"):
            make_store("a/b")

    async def test_unreachable_firestore_says_what_to_check(self) -> None:
        with socket.socket() as probe:  # a port where nothing listens
            probe.bind(("127.0.0.1", 0))
            host = f"127.0.0.1:{probe.getsockname()[1]}"
        client = FirestoreEmulator(host).client()
        store = FirestoreStore(client.project, _namespace(), client=client, timeout_s=0.5)
        try:
            with pytest.raises(BackendError, match="FIRESTORE_EMULATOR_HOST") as raised:
                await store.get("k")
            assert "cannot be reached" in str(raised.value)
        finally:
            await store.close()

    async def test_closed_store_says_so(self, make_store: Callable[..., FirestoreStore]) -> None:
        store = make_store()
        await store.get("k")
        await store.close()
        await store.close()
        with pytest.raises(BackendError, match="closed"):
            await store.get("k")

    def test_client_for_another_project_is_refused(
        self,
        firestore_emulator: FirestoreEmulator,
    ) -> None:
        with pytest.raises(InvalidRequestError, match="project"):
            FirestoreStore("another-project", _namespace(), client=firestore_emulator.client())
