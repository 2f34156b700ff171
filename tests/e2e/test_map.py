"""remote_parallel_map against a real local cluster: processes, sockets, SQLite, files."""

from __future__ import annotations

import os
import sys
import time
import traceback as traceback_module
from collections import Counter

import pytest

from burla import (
    FunctionExitError,
    InputTimeoutError,
    PayloadTooLargeError,
    RemoteError,
    ResourceRequestError,
    SerializationError,
    WorkerCrashedError,
    remote_parallel_map,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]


def double(x):
    return 2 * x


def test_results_come_back_in_input_order():
    assert remote_parallel_map(double, range(200), spinner=False) == [2 * x for x in range(200)]


def test_completion_order_and_generator():
    def slow_first(x):
        time.sleep(0.3 if x == 0 else 0)
        return x

    results = remote_parallel_map(slow_first, range(6), ordered=False, spinner=False)
    assert sorted(results) == list(range(6))
    assert results[0] != 0  # the slow one comes after others that finished first
    stream = remote_parallel_map(double, range(5), generator=True, spinner=False)
    assert not isinstance(stream, list)
    assert list(stream) == [0, 2, 4, 6, 8]


def test_tuples_are_unpacked_unless_asked_not_to():
    assert remote_parallel_map(lambda a, b: a + b, [(1, 2), (3, 4)], spinner=False) == [3, 7]
    assert remote_parallel_map(len, [(1, 2, 3)], unpack_tuples=False, spinner=False) == [3]


def test_prints_reach_the_callers_stdout_and_stderr(capfd):
    def talk(x):
        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        return x

    remote_parallel_map(talk, range(3), spinner=False)
    out, err = capfd.readouterr()
    assert sorted(out.splitlines()) == ["out 0", "out 1", "out 2"]
    assert sorted(err.splitlines()) == ["err 0", "err 1", "err 2"]


def test_remote_exception_is_raised_as_its_own_type_with_the_input_index():
    def picky(x):
        if x == 3:
            raise KeyError(f"no {x}")
        return x

    with pytest.raises(KeyError, match="no 3") as caught:
        remote_parallel_map(picky, range(5), spinner=False)
    assert caught.value.burla_input_index == 3
    names = []
    traceback = caught.value.__traceback__
    while traceback is not None:
        names.append(traceback.tb_frame.f_code.co_name)
        traceback = traceback.tb_next
    assert "picky" in names
    # The function went by value, yet its frame names this file and shows its line.
    shown = "".join(traceback_module.format_exception(caught.value))
    assert f'File "{__file__}"' in shown
    assert 'raise KeyError(f"no {x}")' in shown
    assert "<dynamic-code>" not in shown


def test_an_exception_that_cannot_travel_becomes_a_burla_error_with_its_text():
    import threading

    class Holder(Exception):
        def __init__(self):
            super().__init__("holding a lock")
            self.lock = threading.Lock()

    def hold(x):
        raise Holder()

    with pytest.raises(RemoteError, match="holding a lock") as caught:
        remote_parallel_map(hold, [1], spinner=False)
    assert caught.value.burla_input_index == 0
    assert "Holder" in caught.value.remote_type


def deep(n):
    return deep(n + 1) if n < 5000 else n


def test_a_recursion_error_comes_back_as_itself():
    def overflow(x):
        return deep(0) if x == 2 else x

    with pytest.raises(RecursionError) as caught:
        remote_parallel_map(overflow, range(4), spinner=False)
    assert caught.value.burla_input_index == 2
    assert any("frames from the middle" in note for note in caught.value.__notes__)


def test_sys_exit_in_the_function_is_an_error_naming_the_input_and_code():
    def leave(x):
        if x == 1:
            sys.exit(3)
        return x

    with pytest.raises(FunctionExitError, match=r"input 1 called sys.exit\(3\)") as caught:
        remote_parallel_map(leave, range(3), spinner=False)
    assert caught.value.code == 3
    assert caught.value.burla_input_index == 1


def test_a_result_that_does_not_pickle_names_its_input():
    import threading

    def keep_a_lock(x):
        return threading.Lock() if x == 1 else x

    with pytest.raises(SerializationError, match="the return value of input 1") as caught:
        remote_parallel_map(keep_a_lock, range(3), spinner=False)
    assert caught.value.burla_input_index == 1


def test_unpicklable_function_or_input_fails_before_any_work():
    import threading

    lock = threading.Lock()
    with pytest.raises(SerializationError, match="cannot be pickled"):
        remote_parallel_map(lambda x: lock, [1], spinner=False)
    with pytest.raises(SerializationError, match="input 1"):
        remote_parallel_map(double, [1, threading.Lock()], spinner=False)


def test_oversized_input_is_refused_and_leaves_nothing_behind(monkeypatch, local_dir):
    monkeypatch.setenv("BURLA_MAX_PAYLOAD_MB", "1")
    with pytest.raises(PayloadTooLargeError, match=r"input 1 pickles to 2\.0 MB"):
        remote_parallel_map(len, [b"", b"x" * (2 << 20)], spinner=False)
    left = [name for _, _, files in os.walk(local_dir / "blobs") for name in files]
    assert not [name for name in left if name.endswith(".upload")], "a half-written upload"


def test_a_big_argument_among_others_is_pickled_straight_into_the_blob_store():
    import threading

    def size_plus(data, extra):
        return len(data) + extra

    big = b"y" * (2 << 20)  # known to be big before pickling: written as it is pickled
    assert remote_parallel_map(size_plus, [(big, 1), (b"", 2)], spinner=False) == [
        (2 << 20) + 1,
        2,
    ]
    with pytest.raises(SerializationError, match="input 0"):
        remote_parallel_map(size_plus, [(big, threading.Lock())], spinner=False)


def test_big_inputs_travel_through_the_blob_store():
    blobs = [bytes([n]) * (3 << 20) for n in range(3)]
    assert remote_parallel_map(len, blobs, spinner=False) == [3 << 20] * 3


def test_func_cpu_larger_than_any_node_is_refused():
    with pytest.raises(ResourceRequestError, match="largest is local"):
        remote_parallel_map(double, [1], func_cpu=10_000, spinner=False)


def test_func_cpu_gives_fewer_bigger_workers(cluster):
    """The local cluster is one node of `cluster.cpus` CPUs. Its kill plan keeps
    cpus // func_cpu workers, each pinned to func_cpu CPUs of its own (virtual CPUs beyond
    the machine's wrap around onto them)."""

    def worker(x):
        time.sleep(0.5)  # long enough that every worker the node keeps gets an input
        return os.getpid(), tuple(sorted(os.sched_getaffinity(0)))

    def workers_of(func_cpu):
        inputs = range(2 * cluster.cpus)
        seen = set(remote_parallel_map(worker, inputs, func_cpu=func_cpu, spinner=False))
        assert len({pid for pid, _ in seen}) == len(seen), "a worker's CPUs changed mid-job"
        return [cpus for _, cpus in seen]

    assert cluster.cpus >= 2, "func_cpu=2 needs a node of 2 CPUs or more"
    machine_cpus = len(os.sched_getaffinity(0))
    narrow = workers_of(func_cpu=1)
    wide = workers_of(func_cpu=2)
    assert len(narrow) == cluster.cpus
    assert [len(cpus) for cpus in narrow] == [1] * cluster.cpus
    assert len(wide) == cluster.cpus // 2
    assert [len(cpus) for cpus in wide] == [min(2, machine_cpus)] * (cluster.cpus // 2)


def test_a_crashing_worker_is_retried_then_reported(tmp_path):
    marker = tmp_path / "crashed-once"

    def crash_once(x):
        if x == 1 and not marker.exists():
            marker.touch()
            os._exit(3)
        return x

    assert remote_parallel_map(crash_once, range(3), retries=1, spinner=False) == [0, 1, 2]

    def always_crash(x):
        if x == 2:
            os._exit(3)
        return x

    with pytest.raises(WorkerCrashedError, match="input 2 failed after 2 tries") as caught:
        remote_parallel_map(always_crash, range(4), retries=1, spinner=False)
    assert caught.value.burla_input_index == 2
    # After a failure the same client runs the next job normally.
    assert remote_parallel_map(double, [21], spinner=False) == [42]


def test_a_dying_worker_runs_again_only_the_input_it_was_running(tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "crashed-once"

    def log_run(x):
        with open(runs, "a") as log:
            log.write(f"{x}\n")
        if x == 150 and not marker.exists():
            marker.touch()
            os._exit(3)
        return x

    assert remote_parallel_map(log_run, range(300), retries=1, spinner=False) == list(range(300))
    ran = Counter(int(line) for line in runs.read_text().split())
    assert set(ran) == set(range(300))
    again = sorted(x for x, times in ran.items() if times > 1)
    assert again == [150]  # the results it had not sent yet came from its spool


def test_a_segfault_is_a_crash_too():
    def segfault(x):
        import ctypes

        ctypes.string_at(0)

    with pytest.raises(WorkerCrashedError) as caught:
        remote_parallel_map(segfault, [0], spinner=False)
    assert caught.value.burla_input_index == 0


def test_per_input_timeout():
    def nap(x):
        time.sleep(x)
        return x

    with pytest.raises(InputTimeoutError, match="timeout") as caught:
        remote_parallel_map(nap, [0, 30], timeout=1, spinner=False)
    assert caught.value.burla_input_index == 1
    assert remote_parallel_map(nap, [0.1], timeout=5, spinner=False) == [0.1]


def test_a_function_can_call_remote_parallel_map_itself():
    def outer(x):
        from burla import remote_parallel_map

        return sum(remote_parallel_map(abs, [-x, -x - 1], spinner=False))

    assert remote_parallel_map(outer, [1, 10], spinner=False) == [3, 21]


def test_a_nested_call_ships_the_callers_own_functions_again():
    """Inside a worker, burla and its dependencies are linked in, not installed: they must
    still travel by name while this module's `double` travels by value once more."""

    def outer(x):
        from burla import remote_parallel_map

        return remote_parallel_map(double, [x, x + 1], spinner=False)

    assert remote_parallel_map(outer, [10], spinner=False) == [[20, 22]]


def test_max_parallelism_caps_inputs_running_at_once(tmp_path):
    def overlap(x):
        import fcntl

        with open(tmp_path / "running", "a+") as counter:
            fcntl.flock(counter, fcntl.LOCK_EX)
            counter.write("+")
        time.sleep(0.3)
        with open(tmp_path / "running", "a+") as counter:
            fcntl.flock(counter, fcntl.LOCK_EX)
            counter.seek(0)
            peak = counter.read()
            counter.write("-")
        running = peak.count("+") - peak.count("-")
        return running

    most = max(remote_parallel_map(overlap, range(4), max_parallelism=1, spinner=False))
    assert most == 1


def test_a_big_function_travels_through_the_blob_store():
    table = bytes(range(256)) * (8 << 12)  # 2 MB captured by the function

    def lookup(i):
        return table[i] + len(table)

    assert remote_parallel_map(lookup, [1, 2], spinner=False) == [1 + len(table), 2 + len(table)]
