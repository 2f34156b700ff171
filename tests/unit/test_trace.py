"""Trace marks: one time line across processes, and the hop table read from it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.hops import steps
from burla.core import trace


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "trace"
    trace.start(str(path))
    try:
        yield path
    finally:
        trace.stop()


def test_marks_of_this_process_and_of_a_child_share_one_file(traced: Path) -> None:
    trace.mark("parent before")
    child = "from burla.core.trace import mark; mark('child')"
    subprocess.run([sys.executable, "-c", child], check=True)
    trace.mark("parent after")
    lines = [line.split(" ", 2) for line in traced.read_text().splitlines()]
    assert [label for _, _, label in lines] == ["parent before", "child", "parent after"]
    times = [int(ns) for ns, _, _ in lines]
    assert times == sorted(times)  # one clock for both processes
    pids = [int(pid) for _, pid, _ in lines]
    assert pids[0] == pids[2] == os.getpid() != pids[1]


def test_stopped_tracing_writes_nothing_and_children_are_not_traced(traced: Path) -> None:
    trace.stop()
    trace.mark("after stop")
    child = "from burla.core.trace import mark; mark('child')"
    subprocess.run([sys.executable, "-c", child], check=True)
    assert not traced.exists() or traced.read_text() == ""


def test_hop_table_takes_medians_of_calls_in_the_usual_order() -> None:
    def call(start: int, gaps: list[int], labels: list[str]) -> list[str]:
        times = [start]
        for gap in gaps:
            times.append(times[-1] + gap * 1000)
        return [f"{ns} 1 {label}" for ns, label in zip(times, labels, strict=True)]

    usual = ["client sends", "main", "client has the answer"]
    lines = [
        *call(0, [10, 20], usual),
        *call(10**9, [30, 40], usual),
        *call(2 * 10**9, [50, 60], usual),
        # Marks left after the answer (the node's reset) count for no call.
        "2000000500000 2 node resets",
        *call(3 * 10**9, [1, 1], ["client sends", "odd", "client has the answer"]),
    ]
    table = steps(lines, skip=0)
    assert table["calls"] == 4
    assert table["calls_in_usual_order"] == 3
    assert [s["median_us"] for s in table["steps"]] == [30, 40]
    assert [(s["from"], s["to"]) for s in table["steps"]] == [
        ("client sends", "main"),
        ("main", "client has the answer"),
    ]
    assert table["median_total_us"] == 50  # of 30, 70, 110 and 2 us
