"""Finished results in the Store as pages: how a node's batch is cut into pages, how they are
named, read back (the first of an input run twice counts) and served a few at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core import stream_wire, wire
from burla.core.clock import WallClock
from burla.core.errors import InvalidRequestError
from burla.core.protocols import Document
from burla.services.result_pages import (
    FAILED,
    PAGE_BYTES,
    PAGE_RESULTS,
    cut_pages,
    delivery_tag,
    page_cuts,
    page_data,
    pages,
    results_of,
    stored_results,
    write_results,
    write_succeeded,
)
from burla.services.store_keys import results_prefix
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def finished(indices, size=3, receipt="r"):
    return [(n, "ok", bytes([n % 256]) * size, f"{receipt}-{n}") for n in indices]


def test_a_batch_is_one_page_in_index_order_keyed_by_its_lowest_input():
    written = pages("job-1", finished([7, 3, 5]))
    ((key, data),) = written.items()
    assert key.startswith(f"{results_prefix('job-1')}000000003-")
    page = Document(key, data, 1)
    assert list(results_of(page)) == [
        (3, "ok", b"\x03" * 3),
        (5, "ok", b"\x05" * 3),
        (7, "ok", b"\x07" * 3),
    ]


def test_pages_are_cut_by_count_and_by_bytes_and_a_big_result_has_its_own():
    by_count = pages("job-1", finished(range(PAGE_RESULTS + 1), size=1))
    assert [len(data["indices"]) for data in by_count.values()] == [PAGE_RESULTS, 1]

    half = PAGE_BYTES // 2
    by_bytes = pages("job-1", finished([0, 1, 2], size=half) + finished([3], size=3 * PAGE_BYTES))
    assert [data["indices"] for data in by_bytes.values()] == [[0, 1], [2], [3]]
    assert all(sum(data["sizes"]) == len(data["payload"]) for data in by_bytes.values())


@given(
    st.lists(
        st.sampled_from([0, 1, 1000, PAGE_BYTES // 3, PAGE_BYTES, PAGE_BYTES + 1]),
        max_size=2 * PAGE_RESULTS + 10,
    )
)
def test_pages_are_cut_where_cut_pages_cuts_them(sizes):
    """page_cuts (a node's and a job's inputs' pages, column by column) cuts rows of these
    sizes as cut_pages cuts the rows themselves."""
    shared = memoryview(bytes(PAGE_BYTES + 1))  # rows of any size, without copies
    rows = [(n, "ok", shared[:size]) for n, size in enumerate(sizes)]
    expected = [[row[0] for row in page] for page in cut_pages(rows)]
    assert [list(range(start, end)) for start, end in page_cuts(sizes)] == expected


@pytest.mark.parametrize(
    "rows",
    [
        finished([7, 3, 5]),
        finished(range(2 * PAGE_RESULTS + 7), size=1, receipt="run"),
        finished([9, 0, 4, 1, 2, 3], size=PAGE_BYTES // 3),
        finished([0, 1, 2], size=PAGE_BYTES // 2) + finished([3], size=3 * PAGE_BYTES),
        finished([5]) + finished([5], receipt="other"),
    ],
)
async def test_results_that_succeeded_are_written_by_column_as_rows_are(rows):
    """A node writes a batch of results that succeeded column by column: the very pages,
    and big results, that write_results writes of the same rows."""
    by_rows, by_columns = MemoryStore(WallClock()), MemoryStore(WallClock())
    blobs = MemoryBlobStore()
    await write_results(
        by_rows, blobs, "job-1", [(n, k, d, delivery_tag(r)) for n, k, d, r in rows]
    )
    indices, _, results, receipts = (list(column) for column in zip(*rows, strict=True))
    await write_succeeded(by_columns, blobs, "job-1", indices, results, receipts)
    expected = await by_rows.list(results_prefix("job-1"))
    assert await by_columns.list(results_prefix("job-1")) == expected
    assert len(expected) >= 1


def test_another_delivery_of_the_same_inputs_gets_another_page_and_a_rewrite_the_same():
    first = pages("job-1", finished([4, 5], receipt="node-a"))
    again = pages("job-1", finished([4, 5], receipt="node-a"))
    other = pages("job-1", finished([4, 5], receipt="node-b"))
    assert first.keys() == again.keys()
    assert first.keys().isdisjoint(other.keys())
    (failed_key,) = pages("job-1", [(4, "worker_died", b"{}", FAILED)])
    assert failed_key not in first
    assert failed_key not in other


@pytest.mark.parametrize(
    "data",
    [
        {**page_data([(0, "ok", b"ab")]), "sizes": [3]},
        {**page_data([(0, "ok", b"ab")]), "kinds": []},
        {**page_data([(0, "ok", b"ab")]), "sizes": [-1]},
    ],
)
def test_a_page_whose_parts_do_not_add_up_is_refused(data):
    with pytest.raises(InvalidRequestError, match="a kind and a size for each input"):
        results_of(Document("results/job-1/000000000-x", data, 1))


async def test_stored_results_takes_the_first_page_of_an_input_run_twice():
    store, blobs = MemoryStore(WallClock()), MemoryBlobStore()
    await write_results(store, blobs, "job-1", [(0, "ok", b"first", "a"), (1, "ok", b"one", "a")])
    await write_results(store, blobs, "job-1", [(1, "ok", b"again", "b")])
    await write_results(store, blobs, "job-1", [(2, "worker_died", b"{}", FAILED)])
    assert await stored_results(store, blobs, "job-1") == {
        0: ("ok", b"first"),
        1: ("ok", b"one"),
        2: ("worker_died", b"{}"),
    }
    assert await stored_results(store, blobs, "job-2") == {}


async def test_a_result_too_big_for_a_page_is_a_blob_the_page_names():
    store, blobs = MemoryStore(WallClock()), MemoryBlobStore()
    big, raised = b"b" * (PAGE_BYTES + 1), b"r" * (2 * PAGE_BYTES)
    written = [(0, "ok", b"small", "a"), (1, "ok", big, "a"), (2, "raised", raised, FAILED)]
    await write_results(store, blobs, "job-1", written)
    docs = await store.list(results_prefix("job-1"))
    assert all(len(doc.data["payload"]) < PAGE_BYTES for doc in docs)
    assert len(await blobs.list(results_prefix("job-1"))) == 2
    assert await stored_results(store, blobs, "job-1") == {
        0: ("ok", b"small"),
        1: ("ok", big),
        2: ("raised", raised),
    }


async def test_the_results_route_serves_pages_a_few_at_a_time_until_none_is_left():
    service = memory_service(WallClock())
    spec = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}
    body = wire.encode_many([({"job_id": "job-0123456789", "spec": spec}, b"f"), ({"i": 0}, b"x")])
    async with serving(service, TOKEN) as client:
        assert (await client.post("/jobs", content=body, headers=AUTH)).status_code == 200
        for first in range(0, 10, 2):  # five pages of two
            await service.store.put_many(pages("job-0123456789", finished([first, first + 1])))
        seen, asked = [], 0
        after = ""
        while after is not None:
            answer = await client.get(
                "/jobs/job-0123456789/results", params={"after": after, "limit": 2}, headers=AUTH
            )
            assert answer.status_code == 200, answer.text
            asked += 1
            seen += [
                event.index for event, _ in stream_wire.read_events(wire.decode_all(answer.content))
            ]
            after = answer.headers.get(stream_wire.NEXT_PAGE)
        refused = await client.get("/jobs/job-0123456789/results?limit=0", headers=AUTH)
    assert seen == list(range(10))
    assert asked == 3  # two pages, two, and the last one (fewer than asked for: no more)
    assert refused.status_code == 400
    assert "limit" in refused.text
