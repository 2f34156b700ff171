"""The scale scenario, through `burla sim` as a user runs it: 1,000 nodes of 96 CPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_scale_runs_96_000_cpus_at_once_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    subprocess.run(
        [sys.executable, "-m", "burla.cli", "sim", "scale", "--json", str(out)],
        check=True,
        timeout=280,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["cpus_now"] == 96_000
    assert report["peak_nodes"] == 1000
    assert report["time_to_first_start_s"] < 1.0
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 100_000
    assert report["checks"]["inputs_lost"] == 0
    assert report["checks"]["inputs_recorded_twice"] == 0
    assert report["standby_restored"] is True
