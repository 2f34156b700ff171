"""One client of the soak test: jobs of random sizes, one after another, until time is up.

Every run of the function appends lines to `runs_dir/<worker pid>`: `start TAG X TIME` when
it starts, then `end TAG X TIME` when it returns, or `exit TAG X TIME` when it kills its
own worker (it does now and then, so that some inputs run more than once). A run with a
start and no end died mid-input; a run with an end whose input ran again had finished, and
its result was lost with its worker or node. Prints one JSON line: jobs, inputs, results
lost (wrong or missing) and errors."""

from __future__ import annotations

import json
import os
import random
import sys
import time

from burla import remote_parallel_map


def main(runs_dir: str, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    tally = {"jobs": 0, "inputs": 0, "lost": 0, "errors": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tag = f"{seed}-{tally['jobs']}"
        size = rng.choice([1, 1, 2, 5, 20, 100, 400])

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

        inputs = list(range(size))
        try:
            results = remote_parallel_map(work, inputs, retries=5, spinner=False)
        except Exception as error:  # counted and reported: the test fails on any
            tally["errors"].append(f"{type(error).__name__}: {error}")
            tally["lost"] += size
        else:
            tally["lost"] += sum(1 for x, r in zip(inputs, results, strict=False) if r != x * x)
            tally["lost"] += abs(len(results) - size)
        tally["jobs"] += 1
        tally["inputs"] += size
    print(json.dumps(tally))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
