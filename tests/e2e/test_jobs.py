"""Jobs as users live with them: Ctrl-C, many clients, live output, detached jobs, status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from burla import ConflictError, InvalidRequestError, remote_parallel_map
from burla.client import local
from burla.client.map import job_results
from tests.e2e.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]


def api(cluster: local.ClusterInfo) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.url, headers={"authorization": f"Bearer {cluster.token}"}, timeout=30
    )


def test_ctrl_c_cancels_the_job_and_stops_remote_work(cluster, tmp_path: Path):
    started, finished = tmp_path / "started", tmp_path / "finished"
    started.mkdir()
    finished.mkdir()
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from burla import remote_parallel_map

            def slow(x):
                (Path({str(started)!r}) / str(x)).touch()
                time.sleep(4)
                (Path({str(finished)!r}) / str(x)).touch()
                return x

            remote_parallel_map(slow, range(4), spinner=False)
            """
        )
    )
    client = subprocess.Popen(
        [sys.executable, str(script)],
        env={**os.environ, "BURLA_LOCAL_DIR": os.environ["BURLA_LOCAL_DIR"]},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(os.listdir(started)) >= 1)
        interrupted_at = time.monotonic()
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert time.monotonic() - interrupted_at < 5, "the client did not exit promptly"
    assert client.returncode != 0
    assert "JobInterruptedError" in err
    assert "canceled on the cluster" in err
    with api(cluster) as http:
        jobs = http.get("/cluster").json()["jobs"]
    assert "canceled" in jobs.values()
    time.sleep(4.5)  # past the point where the inputs would have finished
    assert os.listdir(finished) == [], "remote work went on after the cancel"
    # The cluster is healthy for the next job.
    assert remote_parallel_map(abs, [-5], spinner=False) == [5]


def test_two_clients_at_once_each_get_their_own_results():
    results: dict[str, list] = {}

    def client(name: str, offset: int) -> None:
        def shift(x):
            time.sleep(0.01)
            return x + offset

        results[name] = remote_parallel_map(shift, range(50), spinner=False)

    threads = [threading.Thread(target=client, args=(n, o)) for n, o in [("a", 0), ("b", 1000)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results["a"] == list(range(50))
    assert results["b"] == [x + 1000 for x in range(50)]


def test_printed_lines_arrive_while_the_job_runs(capfd):
    def chatty(x):
        print("started", flush=True)
        time.sleep(3)
        return x

    outcome: list = []
    job = threading.Thread(
        target=lambda: outcome.append(remote_parallel_map(chatty, [1], spinner=False))
    )
    job.start()
    seen = ""

    def printed() -> bool:
        nonlocal seen
        seen += capfd.readouterr().out
        return "started" in seen

    wait_for(printed, timeout_s=10)
    assert job.is_alive(), "the line came only when the job ended"
    job.join(timeout=30)
    assert outcome == [[1]]


def test_detached_job_results_are_fetched_later(tmp_path: Path):
    job_id = remote_parallel_map(lambda x: x * 3, range(5), detach=True)
    assert isinstance(job_id, str)
    assert job_results(job_id) == [0, 3, 6, 9, 12]
    printed = subprocess.run(
        [str(Path(sys.executable).parent / "burla"), "jobs", "result", job_id, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(printed.stdout) == [0, 3, 6, 9, 12]


def test_a_detached_jobs_big_results_come_back_from_the_blob_store(local_dir: Path):
    sizes = [10, 700_000, 3, 1_500_000]
    job_id = remote_parallel_map(lambda n: bytes([n % 7]) * n, sizes, detach=True)
    assert job_results(job_id) == [bytes([n % 7]) * n for n in sizes]


def test_status_endpoints_and_restart_cluster(cluster):
    with api(cluster) as http:
        state = http.get("/cluster").json()
        assert state["standby"]["nodes"][0]["count"] == 1
        assert any(n["state"] in ("ready", "busy", "booting") for n in state["nodes"])
        job_id = remote_parallel_map(abs, [-1, -2], detach=True)
        assert job_results(job_id) == [1, 2]
        job = http.get(f"/jobs/{job_id}").json()
        assert job["state"] == "succeeded"
        assert job["inputs"] == {"succeeded": 2}
        assert http.get("/jobs/job-that-never-was").status_code == 404
        assert http.get("/cluster", headers={"authorization": "Bearer wrong"}).status_code == 401
        wait_for(lambda: http.get("/cluster").json()["ready"] == 1)
        before = {n["node_id"] for n in http.get("/cluster").json()["nodes"]}
        restarted = http.post("/restart_cluster").json()
        after = {n["node_id"] for n in restarted["nodes"]}
        assert len(after) == 1
        assert not before & after, "restart keeps no idle node: a fresh standby set starts"
        wait_for(lambda: http.get("/cluster").json()["ready"] == 1)
    assert remote_parallel_map(abs, [-7], spinner=False) == [7]


def test_a_job_canceled_before_its_submission_arrives_never_runs(cluster):
    from burla.client.map import Session
    from burla.client.serialize import dumps_function, dumps_input
    from burla.core import stream_wire

    session = Session.for_local_cluster()
    with api(cluster) as http:
        assert http.post("/jobs/job-early-cancel-1/cancel").json()["state"] == "canceled"
    spec = {"n_inputs": 1}
    function, payloads = dumps_function(abs), [dumps_input(0, -1, True)]
    first = session.submit("job-early-cancel-1", spec, function, payloads, wait=5)
    head, _ = stream_wire.read_stream(first)
    assert head.state == "canceled"
    with pytest.raises(ConflictError, match="there is a job job-early-cancel-1 already"):
        session.submit("job-early-cancel-1", spec, function, payloads, wait=0)
    with pytest.raises(InvalidRequestError, match="is not 8-64"):
        session.submit("NOT OK", spec, function, payloads, wait=0)


def test_a_job_sent_again_to_a_restarted_cluster_that_took_it_is_followed_not_refused(cluster):
    """A client whose cluster stopped without answering starts it again and sends the job
    once more: if the first try was taken (the new main_service took the job over), the
    job is this client's and it follows it."""
    from burla.client.map import Session
    from burla.client.results import follow
    from burla.client.serialize import dumps_function, dumps_input

    session = Session.for_local_cluster()
    spec = {"n_inputs": 2}
    function, payloads = dumps_function(abs), [dumps_input(n, -n, True) for n in range(2)]
    assert session.submit("job-sent-again-1", spec, function, payloads, wait=5) is not None
    again = session.submit("job-sent-again-1", spec, function, payloads, wait=0, resent=True)
    assert again is None, "the job was taken: its events are read from the start"
    assert list(follow(session, "job-sent-again-1", 2, ordered=True, spinner=False)) == [0, 1]


@pytest.mark.parametrize(
    ("n_inputs", "run_s"),
    [(6, 1.5), (64, 0.3)],
    ids=["an-item-per-input", "runs-of-inputs"],  # 64 inputs on one node: runs of 8
)
def test_a_lost_node_does_not_fail_the_job(cluster, tmp_path: Path, n_inputs: int, run_s: float):
    """Kill the node mid-job: its inputs run again on a new node; every result arrives once."""
    started = tmp_path / "started"
    started.mkdir()

    def slow(x):
        (started / f"{x}-{os.getpid()}").touch()
        time.sleep(run_s)
        return x * 10

    outcome: list = []
    job = threading.Thread(
        target=lambda: outcome.append(remote_parallel_map(slow, range(n_inputs), spinner=False))
    )
    job.start()
    wait_for(lambda: len(os.listdir(started)) >= 2)
    with api(cluster) as http:
        busy = [n for n in http.get("/cluster").json()["nodes"] if n["state"] == "busy"]
    assert len(busy) == 1
    record = json.loads(
        (
            Path(os.environ["BURLA_LOCAL_DIR"]) / "nodes" / busy[0]["node_id"] / "node.json"
        ).read_text()
    )
    os.kill(record["pid"], signal.SIGKILL)
    job.join(timeout=180)
    if job.is_alive():  # say where the job stands, for whoever reads a failed run
        with api(cluster) as http:
            state = {"cluster": http.get("/cluster").json(), "jobs": http.get("/jobs").json()}
        root = Path(os.environ["BURLA_LOCAL_DIR"])
        logs = {
            str(log.relative_to(root)): log.read_text(errors="replace")[-20_000:]
            for log in [root / "main.log", *sorted(root.glob("nodes/*/node.log"))]
            if log.exists()
        }
        pytest.fail(f"the job did not finish within 180 s of its node's loss: {state}\n{logs}")
    assert outcome == [[x * 10 for x in range(n_inputs)]]
    assert len(os.listdir(started)) > n_inputs, "the lost node's inputs were not run again"
