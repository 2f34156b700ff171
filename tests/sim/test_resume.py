"""Keep going past failures and resuming a job, in the simulator: inputs that raise, a
client that cancels at the first failure or keeps going, a client that dies mid-job (its
job runs on), and a call with `resume=` through the real main_service, which runs only
the inputs without a successful result and takes the others' results from the first job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burla.sim import command, resumes, run, scenario
from burla.sim.recorder import JobLog
from burla.sim.scenario import ResumeCall, Scenario
from tests.sim.clean import CLEAN_CHECKS

KEEP_GOING = """
name: keep-going
seed: 4
node_types:
  - {name: n2-standard-4, cpus: 4, ram_gb: 16, boot_s: 60}
images:
  - image: burla/default:py3.11
standby:
  - {node_type: n2-standard-4, count: 2}
max_nodes: 2
jobs:
  - n_inputs: 400
    run_s: {low: 5, high: 20}
    raises: {indices: [10, 41]}
    return_exceptions: true
  - at_s: 1200
    n_inputs: 400
    run_s: {low: 5, high: 20}
    raises: {indices: [10, 41]}
    return_exceptions: false
"""


def small_resume() -> Scenario:
    """The shipped `resume` scenario at a tenth: 1,000 inputs on 4 nodes, the client
    dying at 2 minutes and its user back one minute later."""
    shipped = scenario.load("resume")
    (job,) = shipped.jobs
    assert job.resume is not None
    smaller = job.model_copy(
        update={
            "n_inputs": 1000,
            "client_dies_s": 120.0,
            "resume": job.resume.model_copy(update={"after_s": 60.0}),
        }
    )
    standby = (shipped.standby[0].model_copy(update={"count": 4}),)
    return shipped.model_copy(update={"jobs": (smaller,), "standby": standby, "max_nodes": 4})


@pytest.fixture(scope="module")
def keep_going() -> dict[str, Any]:
    return run.run(scenario.parse(KEEP_GOING), validate=True)


@pytest.fixture(scope="module")
def resumed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The tenth of `resume`, and the same job run whole with the fix."""
    chosen = small_resume()
    return run.run(chosen, validate=True), run.run(resumes.rerun_whole(chosen))


def test_with_return_exceptions_a_job_with_failures_runs_to_its_end(
    keep_going: dict[str, Any],
) -> None:
    job = keep_going["jobs"][0]
    assert (job["state"], job["stopped_following"]) == ("failed", None)
    assert job["inputs_run"] == job["results_received"] == job["results_stored"] == 400
    assert job["inputs_failed"] == 2
    assert job["failure"]["input"] in (10, 41)
    assert job["failure"]["type"] == "ValueError"
    assert keep_going["checks"] == CLEAN_CHECKS


def test_without_it_the_client_cancels_the_job_at_the_first_failure(
    keep_going: dict[str, Any],
) -> None:
    job = keep_going["jobs"][1]
    assert job["state"] == "failed"  # canceled by its caller, at an input's error
    assert job["stopped_following"] in (
        "input 10 failed: canceled the job",
        "input 41 failed: canceled the job",
    )
    # The rest of the job never ran.
    assert job["inputs_run"] < 100
    assert job["results_received"] < 100
    assert keep_going["checks"]["inputs_lost"] == 0


def test_a_resume_runs_only_what_the_crashed_job_left_and_gives_every_result(
    resumed: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report, _ = resumed
    assert report["checks"] == CLEAN_CHECKS
    first, again = report["jobs"]
    assert first["stopped_following"] == "the client died"
    assert first["duration_s"] == pytest.approx(120.0)
    assert first["state"] == "canceled"  # by its user, two minutes after the crash
    assert first["inputs_failed"] > 0
    assert again["resumes"] == first["job_id"]
    assert again["state"] == "succeeded"
    succeeded = first["results_stored"] - first["inputs_failed"]
    assert again["inputs_reused"] == succeeded
    assert again["inputs_run"] == 1000 - succeeded
    assert again["results_received"] == again["results_stored"] == 1000
    assert again["inputs_failed"] == 0  # fixed


def test_the_resume_costs_less_than_running_every_input_again(
    resumed: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report, whole = resumed
    (row,) = resumes.comparison(report, whole)
    assert row["full_rerun"]["inputs_run"] == row["full_rerun"]["results"] == 1000
    assert row["full_rerun"]["inputs_failed"] == 0
    assert 0 < row["resume"]["cost_usd"] < row["full_rerun"]["cost_usd"]
    assert row["resume"]["node_seconds"] < row["full_rerun"]["node_seconds"]


def test_a_user_who_waits_for_the_job_resumes_it_as_soon_as_it_ended() -> None:
    """The crashed call's job runs on to its end; its user waits for it and resumes at
    once, unfixed and failed inputs only: its failures run again and fail again."""
    keep_going = scenario.parse(KEEP_GOING)
    call = ResumeCall(after_s=0, running="wait", fixed=False, failed_only=True)
    job = keep_going.jobs[0].model_copy(update={"client_dies_s": 30.0, "resume": call})
    chosen = keep_going.model_copy(update={"jobs": (job,)})
    report = run.run(chosen, validate=True)
    assert report["checks"] == CLEAN_CHECKS
    first, again = report["jobs"]
    assert (first["state"], first["results_stored"], first["inputs_failed"]) == ("failed", 400, 2)
    assert again["error"] is None, again["error"]  # not refused
    assert (again["state"], again["inputs_run"], again["inputs_reused"]) == ("failed", 2, 398)
    assert again["inputs_failed"] == 2


def test_the_checks_count_a_resume_that_ran_a_kept_input_or_left_one_out() -> None:
    log = JobLog("again", "user", 4, arrived=0.0)
    log.results.update({0: 1, 1: 1, 2: 2})
    first = {0: "ok", 1: "raised_text", 2: "ok"}
    found = resumes.check(log, False, first, started={1, 2})
    # 2 had a result and ran again; 3 had none and did not run; 2 came twice, 3 never.
    assert found == {"ran_again": 1, "not_run": 1, "results_not_whole": 2}


def test_burla_sim_prints_the_first_run_the_resume_and_a_full_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "resume.json"
    path.write_text(small_resume().model_dump_json())
    result = command.simulate(str(path), str(tmp_path / "report.json"), None)
    out = " ".join(capsys.readouterr().out.split())
    assert "full re-run" in out
    (row,) = result["resumes"]
    assert row["first"]["stopped_following"] == "the client died"
    resume, rerun = row["resume"], row["full_rerun"]
    assert (
        f"the resume ran {resume['inputs_run']:,} of 1,000 inputs for "
        f"${resume['cost_usd']:,.2f}, where running them all again with the fix costs "
        f"${rerun['cost_usd']:,.2f}"
    ) in out


def test_a_job_whose_client_died_runs_on_to_its_end() -> None:
    """Nothing cancels it: the run ends once it has, with all its results kept, also on
    a cluster without standby nodes (which is in standby all along)."""
    chosen = scenario.parse(KEEP_GOING)
    job = chosen.jobs[0].model_copy(update={"client_dies_s": 20.0})
    no_standby = {"jobs": (job,), "standby": (), "start_in_standby": False}
    report = run.run(chosen.model_copy(update=no_standby), validate=True)
    (died,) = report["jobs"]
    assert died["stopped_following"] == "the client died"
    assert died["results_received"] < 400
    assert (died["state"], died["results_stored"], died["inputs_failed"]) == ("failed", 400, 2)
    assert report["time_to_all_results_s"] is None
    assert report["checks"] == CLEAN_CHECKS
