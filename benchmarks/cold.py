"""The child of the cold-start workloads: `python -m benchmarks.cold SYSTEM WORKERS T0`.

Opens SYSTEM with WORKERS workers in this fresh interpreter, maps `double` over one input
and prints `{"elapsed_s": ...}`: the time.time() at which the result is in hand minus T0,
the time.time() its parent took just before spawning it. Then it closes the pool (for
burla: stops the local cluster), untimed, unless `--leave-running` is given.
"""

import json
import sys
import time


def main() -> None:
    arguments = [a for a in sys.argv[1:] if a != "--leave-running"]
    system, workers, spawned_at = arguments[0], int(arguments[1]), float(arguments[2])
    from benchmarks.systems import open_pool
    from benchmarks.workloads import double

    pool = open_pool(system, workers)
    result = pool.map(double, [21])
    elapsed = time.time() - spawned_at
    if result != [42]:
        raise SystemExit(f"{system} returned {result!r} for double(21)")
    print(json.dumps({"elapsed_s": elapsed}), flush=True)
    if "--leave-running" not in sys.argv:
        pool.close()


if __name__ == "__main__":
    main()
