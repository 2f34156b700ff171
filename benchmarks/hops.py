"""Where a warm one-input call's time goes, hop by hop:
`python -m benchmarks.hops [OUT.json] [--calls 300] [--cpus 2]`.

A local cluster of its own runs with BURLA_TRACE_FILE set (burla.core.trace), so the
client, main_service, the node and its workers mark the moments a job passes on one
clock. The calls that passed the usual marks in the usual order (most do; a few see a
report split in two, say) give, for each step between two marks, the median time.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from burla import remote_parallel_map
from burla.client import local
from burla.core import trace

FIRST = "client sends"
LAST = "client has the answer"
WARM_UP_CALLS = 20


def double(x: int) -> int:
    return 2 * x


def traced_calls(calls: int, cpus: int) -> list[str]:
    """Run warm one-input calls on a traced local cluster; the trace's lines."""
    with tempfile.TemporaryDirectory(prefix="burla-hops-") as root:
        marks = Path(root) / "trace"
        trace.start(str(marks))
        os.environ["BURLA_LOCAL_DIR"] = str(Path(root) / "cluster")
        os.environ["BURLA_LOCAL_CPUS"] = str(cpus)
        try:
            for n in range(WARM_UP_CALLS + calls):
                assert remote_parallel_map(double, [n], spinner=False) == [2 * n]
        finally:
            trace.stop()
            local.stop(Path(root) / "cluster")
        return marks.read_text().splitlines()


def steps(lines: list[str], skip: int) -> dict[str, Any]:
    """Median microseconds of each step between marks, over the calls (after the first
    `skip`) that passed the most common sequence of marks, up to the client's answer
    (what the cluster does after it, such as resetting the node, is left out)."""
    marks = sorted((int(ns), label) for ns, _, label in (line.split(" ", 2) for line in lines))
    calls: list[list[tuple[int, str]]] = []
    for ns, label in marks:
        if label == FIRST:
            calls.append([])
        if calls and (not calls[-1] or calls[-1][-1][1] != LAST):
            calls[-1].append((ns, label))
    calls = calls[skip:]
    sequences = collections.Counter(tuple(label for _, label in call) for call in calls)
    usual, count = sequences.most_common(1)[0]
    gaps: list[list[float]] = [[] for _ in usual[1:]]
    for call in calls:
        if tuple(label for _, label in call) == usual:
            for n, ((before, _), (after, _)) in enumerate(itertools.pairwise(call)):
                gaps[n].append((after - before) / 1000)
    medians = [statistics.median(gap) for gap in gaps]
    totals = [(call[-1][0] - call[0][0]) / 1000 for call in calls if call[-1][1] == LAST]
    return {
        "calls": len(calls),
        "calls_in_usual_order": count,
        "median_total_us": round(statistics.median(totals)),
        "steps": [
            {"from": a, "to": b, "median_us": round(m)}
            for a, b, m in zip(usual, usual[1:], medians, strict=False)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    numbers = steps(traced_calls(args.calls, args.cpus), WARM_UP_CALLS)
    numbers["load_average"] = os.getloadavg()
    for step in numbers["steps"]:
        print(f"{step['median_us']:>6} us  {step['from']} -> {step['to']}")
    print(f"{numbers['median_total_us']:>6} us  from the call's request to its answer (median)")
    if args.out is not None:
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
