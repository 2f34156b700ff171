"""remote_parallel_map(..., backend="gcp") against a cloud cluster running on this machine:
main_service with the Google Cloud backends, emulators, and VMs of the fake Compute API."""

from __future__ import annotations

import hashlib
import sys
import time

import httpx
import pytest

from burla import remote_parallel_map
from burla.client.map import job_results
from tests.components.gcs import check_signed_url
from tests.e2e_gcp.conftest import GcpCluster

pytestmark = pytest.mark.integration


def double(x: int) -> int:
    return 2 * x


def test_results_come_back_in_input_order(gcp: GcpCluster) -> None:
    results = remote_parallel_map(double, range(100), backend="gcp", spinner=False)
    assert results == [2 * x for x in range(100)]


def test_a_remote_exception_is_raised_with_its_input_index(gcp: GcpCluster) -> None:
    def picky(x: int) -> int:
        if x == 7:
            raise ValueError(f"no {x}")
        return x

    with pytest.raises(ValueError, match="no 7") as raised:
        remote_parallel_map(picky, range(10), backend="gcp", spinner=False)
    assert raised.value.burla_input_index == 7  # type: ignore[attr-defined]


def test_a_function_on_a_cloud_node_can_call_remote_parallel_map_itself(gcp: GcpCluster) -> None:
    def fan_out(x: int) -> list[int]:
        from burla import remote_parallel_map as nested_map

        return nested_map(double, [x, x + 1], spinner=False)  # the node names the cluster

    assert remote_parallel_map(fan_out, [10], backend="gcp", spinner=False) == [[20, 22]]


def test_printed_lines_reach_the_caller(gcp: GcpCluster, capfd: pytest.CaptureFixture[str]) -> None:
    def talk(x: int) -> int:
        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        return x

    remote_parallel_map(talk, range(3), backend="gcp", spinner=False)
    out, err = capfd.readouterr()
    assert sorted(out.splitlines()) == ["out 0", "out 1", "out 2"]
    assert sorted(err.splitlines()) == ["err 0", "err 1", "err 2"]


def test_a_big_input_travels_through_cloud_storage_by_signed_url(
    gcp: GcpCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads: list[str] = []
    real_put = httpx.put

    def recording_put(url: str, **kwargs: object) -> httpx.Response:
        uploads.append(url)
        return real_put(url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx, "put", recording_put)
    big = bytes(range(256)) * (6 << 12)  # 1.5 MB: over the 1 MB that travels inline

    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    results = remote_parallel_map(digest, [big, b"small"], backend="gcp", spinner=False)
    assert results == [hashlib.sha256(big).hexdigest(), hashlib.sha256(b"small").hexdigest()]
    assert len(uploads) == 1
    storage = gcp.storage_url
    assert uploads[0].startswith(f"{storage}/{gcp.bucket}/{gcp.cluster}/uploads/")
    check_signed_url(uploads[0], "PUT", gcp.public_key, time.time())


def test_a_detached_jobs_results_are_read_back_later(gcp: GcpCluster) -> None:
    job_id = remote_parallel_map(double, range(20), backend="gcp", spinner=False, detach=True)
    assert isinstance(job_id, str)
    deadline = time.monotonic() + 60
    while gcp.get(f"/jobs/{job_id}")["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the detached job did not finish"
        time.sleep(0.05)
    assert job_results(job_id, backend="gcp") == [2 * x for x in range(20)]


def zeros(size: int) -> bytes:
    return bytes(size)


def test_a_result_bigger_than_a_firestore_document_is_kept_in_cloud_storage(
    gcp: GcpCluster,
) -> None:
    sizes = [2 << 20, 10, 700_000]  # a Firestore document holds 1 MiB
    job_id = remote_parallel_map(zeros, sizes, backend="gcp", spinner=False, detach=True)
    deadline = time.monotonic() + 60
    while gcp.get(f"/jobs/{job_id}")["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the detached job did not finish"
        time.sleep(0.05)
    assert job_results(job_id, backend="gcp") == [bytes(size) for size in sizes]


def test_a_jobs_node_is_deleted_and_standby_refilled(gcp: GcpCluster) -> None:
    before = gcp.wait_for_standby()
    used = before["nodes"][0]["node_id"]
    gcp.wait_for_instances({f"{gcp.cluster}-{used}": "RUNNING"})  # earlier nodes gone
    inserted = len(gcp.api.inserted)

    assert remote_parallel_map(double, [21], backend="gcp", spinner=False) == [42]

    after = gcp.wait_for_standby()
    replacement = after["nodes"][0]["node_id"]
    assert replacement != used
    gcp.wait_for_instances({f"{gcp.cluster}-{replacement}": "RUNNING"})
    assert len(gcp.api.inserted) == inserted + 1


def test_a_new_main_service_reads_a_detached_jobs_results_from_firestore(
    gcp: GcpCluster,
) -> None:
    job_id = remote_parallel_map(double, range(30), backend="gcp", spinner=False, detach=True)
    deadline = time.monotonic() + 60
    while gcp.get(f"/jobs/{job_id}")["state"] != "succeeded":
        assert time.monotonic() < deadline, "the detached job did not finish"
        time.sleep(0.05)

    gcp.stop()  # deletes the cluster's VMs on the way out
    assert gcp.instances() == {}
    gcp.start()  # the same cluster: token, Firestore namespace and bucket prefix

    stored = gcp.get(f"/jobs/{job_id}")
    assert stored["state"] == "succeeded"
    assert "inputs" not in stored  # only the Store knows this job now
    assert job_results(job_id, backend="gcp") == [2 * x for x in range(30)]
    gcp.wait_for_standby()


def slow_double(x: int) -> int:
    time.sleep(0.2)
    return 2 * x


def test_a_main_service_that_comes_back_takes_on_the_live_nodes_and_their_jobs(
    gcp: GcpCluster,
) -> None:
    before = gcp.wait_for_standby()
    node = before["nodes"][0]["node_id"]
    job_id = remote_parallel_map(slow_double, range(40), backend="gcp", spinner=False, detach=True)
    deadline = time.monotonic() + 60
    while not gcp.get(f"/jobs/{job_id}")["counts"]["succeeded"]:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)

    inserted = len(gcp.api.inserted)
    gcp.kill()  # a crash, not a stop: its VMs stay
    assert f"{gcp.cluster}-{node}" in gcp.instances()
    gcp.start()

    # An input can wait out its lease (60 s) after the takeover before it runs again.
    deadline = time.monotonic() + 240
    while (job := gcp.get(f"/jobs/{job_id}"))["state"] == "running":
        assert time.monotonic() < deadline, "the job taken over did not finish"
        if job.get("counts", {}).get("succeeded"):
            # Inputs finish again, on the nodes the earlier main_service made: no new VM.
            assert len(gcp.api.inserted) == inserted
        time.sleep(0.1)
    assert job_results(job_id, backend="gcp") == [2 * x for x in range(40)]
