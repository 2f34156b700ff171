"""Jobs on a cluster whose Store and BlobStore fail now and then: every result arrives,
once, and correct; the failures were real (logged by the services that met them)."""

from __future__ import annotations

from burla import remote_parallel_map


def square(x: int) -> int:
    return x * x


def size_of(data: bytes) -> int:
    return len(data)


def test_jobs_finish_whole_through_store_and_blob_failures(faulty_cluster) -> None:
    for size in (1, 300, 2, 50, 1, 1000, 3, 1, 100, 1):
        inputs = list(range(size))
        assert remote_parallel_map(square, inputs, spinner=False) == [x * x for x in inputs]
    # Through the blob store, just over the 1 MB an input may have inline: each is a blob
    # call or more, enough that one fails but once in thousands of runs (0.7 ** 24).
    big = [bytes([n]) * (2**20 + 1024 + n) for n in range(24)]
    assert remote_parallel_map(size_of, big, spinner=False) == [len(b) for b in big]
    injected = faulty_cluster.injected()
    processes = {line.split()[0] for line in injected}
    assert len(injected) >= 10, injected
    assert len(processes) >= 2, "both main_service and the node met failures"
    assert any(" Store " in f" {line} " for line in injected)
    assert any("blob store" in line for line in injected)
