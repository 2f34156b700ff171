"""A client that submits jobs from several threads at once: the caller's own modules
travel by value, and the threads share one session with the cluster."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import cloudpickle

from burla.client import local, serialize
from burla.client.session import Session
from burla.release import install_stamp


def test_a_thread_that_finds_a_module_seen_waits_until_it_is_registered(tmp_path, monkeypatch):
    own = tmp_path / "own_module_for_threads.py"
    own.write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    serialize.ship_own_code_by_value()  # every other module: seen already
    import own_module_for_threads

    registering = threading.Event()
    slow_register = cloudpickle.register_pickle_by_value

    def register(module: types.ModuleType) -> None:
        if module is own_module_for_threads:
            registering.set()
            time.sleep(0.3)  # the first thread is slow to register: the second must wait
        slow_register(module)

    monkeypatch.setattr(cloudpickle, "register_pickle_by_value", register)
    pickled: list[bytes] = []
    first = threading.Thread(target=serialize.ship_own_code_by_value)
    first.start()
    assert registering.wait(5)
    pickled.append(serialize.dumps_function(own_module_for_threads.double))
    first.join()
    cloudpickle.unregister_pickle_by_value(own_module_for_threads)
    # A worker's interpreter, where the module is not importable: by value, it needs none.
    worker = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; print(pickle.load(sys.stdin.buffer)(21))"],
        input=pickled[0],
        capture_output=True,
        cwd="/",
        check=False,
    )
    assert worker.stdout.strip() == b"42", worker.stderr.decode()


def test_threads_that_start_jobs_at_once_share_one_session_and_start_one_cluster(
    tmp_path, monkeypatch
):
    starts: list[Path] = []

    def start(root: Path, backend: str = "local") -> local.ClusterInfo:
        starts.append(root)
        time.sleep(0.2)  # a cluster takes a while to start: the others must wait for it
        return local.ClusterInfo("http://127.0.0.1:9", "token", 1, 2, install=install_stamp())

    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr(local, "start", start)
    monkeypatch.setattr(local, "stamp", lambda root: (1,))
    monkeypatch.setattr(local, "size_ignored", lambda *args: None)
    sessions: list[Session] = []
    threads = [
        threading.Thread(target=lambda: sessions.append(Session.for_local_cluster()))
        for _ in range(6)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert starts == [tmp_path]
        assert len(sessions) == 6
        assert len({id(s) for s in sessions}) == 1
    finally:
        Session.close_all()


def test_a_module_of_the_callers_imported_in_place_of_another_travels_by_value(
    tmp_path, monkeypatch
):
    """The client looks for new modules of the caller's own only when sys.modules changed:
    one imported after another was dropped (as many modules as before) is still seen."""
    for name in ("own_dropped_module", "own_module_in_its_place"):
        (tmp_path / f"{name}.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import own_dropped_module

    serialize.ship_own_code_by_value()
    del sys.modules["own_dropped_module"]
    import own_module_in_its_place

    pickled = serialize.dumps_function(own_module_in_its_place.double)
    cloudpickle.unregister_pickle_by_value(own_module_in_its_place)
    cloudpickle.unregister_pickle_by_value(own_dropped_module)
    del sys.modules["own_module_in_its_place"]
    worker = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; print(pickle.load(sys.stdin.buffer)(21))"],
        input=pickled,
        capture_output=True,
        cwd="/",
        check=False,
    )
    assert worker.stdout.strip() == b"42", worker.stderr.decode()
