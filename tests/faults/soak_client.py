"""One client of the soak test: jobs of mixed kinds, one after another, until time is up.

The kinds are what users submit: small and large jobs of quick inputs, inputs of several
megabytes (they travel through the blob store), generators in completion order, a job
whose input raises (after its retries), inputs that run past the job's timeout, and a
generator closed after a few results (which cancels its job). Each job's result or error
is checked against what it must be.

Every run of the quick function appends lines to `runs_dir/<worker pid>`: `start TAG X
TIME` when it starts, then `end TAG X TIME` when it returns, or `exit TAG X TIME` when it
kills its own worker (it does now and then, so that some inputs run more than once). A
run with a start and no end died mid-input; a run with an end whose input ran again had
finished, and its result was lost with its worker or node. Every try of a timeout job's
input appends `sleep TAG SECONDS TIME` there too: a try that ends as a worker death must
be one whose worker was killed from outside.

Each finished job appends `KIND INPUTS SECONDS END_TIME` to `jobs_dir/<seed>`, and the
client prints one JSON line at the end: jobs, inputs, results lost (wrong or missing) and
errors (unexpected ones)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from burla import remote_parallel_map
from burla.core.errors import InputTimeoutError, WorkerCrashedError

KINDS = ("quick", "quick", "quick", "big", "generator", "raises", "timeout", "cancel")
QUICK_SIZES = (1, 1, 2, 5, 20, 100, 400)


class Tally:
    def __init__(self) -> None:
        self.jobs = self.inputs = self.lost = 0
        self.logged_inputs = 0
        """Inputs of the quick function, whose runs are logged."""
        self.timeouts_reported_as_deaths: list[str] = []
        """Tags of timeout jobs whose input's last try ended as a worker death."""
        self.errors: list[str] = []
        self.kinds: dict[str, int] = {}

    def as_json(self) -> str:
        return json.dumps(
            {
                "jobs": self.jobs,
                "inputs": self.inputs,
                "logged_inputs": self.logged_inputs,
                "timeouts_reported_as_deaths": self.timeouts_reported_as_deaths,
                "lost": self.lost,
                "errors": self.errors,
                "kinds": self.kinds,
            }
        )


def main(runs_dir: str, jobs_dir: str, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    tally = Tally()
    deadline = time.monotonic() + seconds
    jobs_log = os.path.join(jobs_dir, str(seed))
    while time.monotonic() < deadline:
        kind = rng.choice(KINDS)
        tag = f"{seed}-{tally.jobs}"
        started = time.monotonic()
        size = JOBS[kind](tally, rng, tag, runs_dir)
        took = time.monotonic() - started
        with open(jobs_log, "a") as log:
            log.write(f"{kind} {size} {took:.3f} {time.time():.3f}\n")
        tally.jobs += 1
        tally.inputs += size
        tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
    print(tally.as_json())


def quick(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    def work(x: int, tag: str = tag, runs_dir: str = runs_dir) -> int:
        path = os.path.join(runs_dir, str(os.getpid()))
        runs = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(runs, f"start {tag} {x} {time.time()}\n".encode())  # one line, at once
        if random.random() < 0.01:
            os.write(runs, f"exit {tag} {x} {time.time()}\n".encode())
            os._exit(17)  # the worker dies mid-input; the input is tried again
        os.write(runs, f"end {tag} {x} {time.time()}\n".encode())
        os.close(runs)
        return x * x

    inputs = list(range(rng.choice(QUICK_SIZES)))
    tally.logged_inputs += len(inputs)
    _check(
        tally,
        lambda: remote_parallel_map(work, inputs, retries=5, spinner=False),
        inputs,
        [x * x for x in inputs],
    )
    return len(inputs)


def big(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    """A few inputs of 1 to 6 MB each: too big to go inline, so they go by blob."""
    inputs = [rng.randbytes(rng.randint(1, 6) * 1_000_000) for _ in range(rng.randint(1, 4))]
    expected = [hashlib.sha256(b).hexdigest() for b in inputs]
    _check(
        tally,
        lambda: remote_parallel_map(_digest, inputs, retries=5, spinner=False),
        inputs,
        expected,
    )
    return len(inputs)


def generator(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    inputs = list(range(rng.randint(10, 80)))

    def run() -> list[int]:
        got = remote_parallel_map(
            _square_slowly, inputs, generator=True, ordered=False, retries=5, spinner=False
        )
        return sorted(got)

    _check(tally, run, inputs, [x * x for x in inputs])
    return len(inputs)


def raises(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    """One input raises on every try: the caller gets its ValueError, with its index."""
    inputs = list(range(8))
    bad = rng.randrange(len(inputs))
    try:
        remote_parallel_map(_fail_at, [(x, bad) for x in inputs], retries=1, spinner=False)
    except ValueError as error:
        if getattr(error, "burla_input_index", None) != bad or str(error) != f"bad input {bad}":
            tally.errors.append(f"raises: wrong error {error!r} for input {bad}")
    except Exception as error:
        tally.errors.append(f"raises: {type(error).__name__}: {error}")
    else:
        tally.errors.append("raises: no error")
    return len(inputs)


def timeout(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    """An input that runs past the job's timeout is stopped, and the caller told which
    (after its retries, which a worker killed from outside may use up instead)."""
    inputs = [0.0, 0.0, 60.0]

    def sleep(seconds: float, tag: str = tag, runs_dir: str = runs_dir) -> None:
        path = os.path.join(runs_dir, str(os.getpid()))
        runs = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(runs, f"sleep {tag} {seconds} {time.time()}\n".encode())
        os.close(runs)
        time.sleep(seconds)

    try:
        remote_parallel_map(sleep, inputs, timeout=1.0, retries=2, spinner=False)
    except (InputTimeoutError, WorkerCrashedError) as error:
        if getattr(error, "burla_input_index", None) != 2:
            tally.errors.append(f"timeout: wrong input in {error!r}")
        if isinstance(error, WorkerCrashedError):
            tally.timeouts_reported_as_deaths.append(tag)  # checked against the kills
    except Exception as error:
        tally.errors.append(f"timeout: {type(error).__name__}: {error}")
    else:
        tally.errors.append("timeout: no error")
    return len(inputs)


def cancel(tally: Tally, rng: random.Random, tag: str, runs_dir: str) -> int:
    """Three results of a long job, then the generator is closed: the job is canceled."""
    inputs = list(range(200))
    try:
        results = remote_parallel_map(
            _square_slowly, inputs, generator=True, retries=5, spinner=False
        )
        first = [next(results) for _ in range(3)]
        results.close()
        if first != [0, 1, 4]:
            tally.errors.append(f"cancel: first results {first}")
            tally.lost += 3
    except Exception as error:
        tally.errors.append(f"cancel: {type(error).__name__}: {error}")
    return 3


def _check(
    tally: Tally, run: Callable[[], list[Any]], inputs: list[Any], expected: list[Any]
) -> None:
    try:
        results = run()
    except Exception as error:  # counted and reported: the test fails on any
        tally.errors.append(f"{type(error).__name__}: {error}")
        tally.lost += len(inputs)
        return
    tally.lost += sum(1 for got, want in zip(results, expected, strict=False) if got != want)
    tally.lost += abs(len(results) - len(expected))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _square_slowly(x: int) -> int:
    time.sleep(0.05)
    return x * x


def _fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


JOBS = {
    "quick": quick,
    "big": big,
    "generator": generator,
    "raises": raises,
    "timeout": timeout,
    "cancel": cancel,
}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
