"""`burla jobs`: list jobs, and show, follow, cancel or collect one."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click

from burla.cli.connect import backend_option, cluster_options, session
from burla.cli.costs import cost_lines, show_totals
from burla.cli.output import JOB_FAILED, emit, table


@click.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Also jobs that ended long ago.")
@click.option(
    "--mine", is_flag=True, help="The jobs started from this machine lately, to find one lost."
)
@cluster_options
@click.pass_context
def jobs(
    context: click.Context, show_all: bool, mine: bool, backend: str | None, as_json: bool
) -> None:
    """Jobs on the cluster, newest first: those running or ended in the last minutes
    (with --all, every job the cluster has a record of), and each user's node time and
    cost of those listed (each job's: `burla jobs show`, or --json). With --mine, the
    last 100 jobs started from this machine (by remote_parallel_map or `burla jobs
    rerun`), each with its function and its state now, even after the process that
    started it crashed.

    \b
    Examples:
      burla jobs
      burla jobs --mine
      burla jobs show job-1795615775-3fa9c2d1
      burla jobs logs job-1795615775-3fa9c2d1 --follow
      burla jobs rerun job-1795615775-3fa9c2d1
    """
    if context.invoked_subcommand is not None:
        return
    if mine:
        _my_jobs(backend, as_json)
        return
    found = session(backend).call("GET", "/jobs", params={"all": show_all}).json()["jobs"]
    rows = [
        (
            job["job_id"],
            job["state"],
            job["n_inputs"],
            job.get("succeeded", ""),
            job.get("failed", ""),
            job.get("never_run", ""),
            _clock(job.get("submitted_at")),
        )
        for job in found
    ]
    heads = ("job", "state", "inputs", "succeeded", "failed", "never ran", "submitted")

    def show() -> None:
        table(heads, rows)
        show_totals(found)

    emit(found, as_json, show)


def _my_jobs(backend: str | None, as_json: bool) -> None:
    """The jobs this machine started on the cluster lately, with their state now."""
    from burla.client.recent_jobs import cluster_of, recent, recent_jobs_path
    from burla.core.errors import NotFoundError
    from burla.core.settings import load_settings

    connection = session(backend)
    settings = load_settings()
    if backend is not None:
        settings = settings.replace(backend=backend)
    found = []
    for job in recent(recent_jobs_path(settings), cluster_of(settings)):
        try:
            state = connection.call("GET", f"/jobs/{job.job_id}").json()["state"]
        except NotFoundError:
            state = "gone"  # never arrived, or removed with its results
        found.append({**dataclasses.asdict(job), "state": state})
    rows = [
        (job["job_id"], _when(job["submitted_at"]), job["function"], job["state"], job["resumes"])
        for job in found
    ]
    heads = ("job", "submitted", "function", "state", "resumes")
    emit(found, as_json, lambda: table(heads, rows))


def _when(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


@jobs.command("rerun")
@click.argument("job_id")
@click.option(
    "--failed-only",
    is_flag=True,
    help="Run only the inputs that failed, not those the job never ran.",
)
@cluster_options
def jobs_rerun(job_id: str, failed_only: bool, backend: str | None, as_json: bool) -> None:
    """Resume a job from what the cluster kept of it (its function and inputs): a new job
    of the same inputs, in which those without a successful result (failed, never run,
    or lost with their caller) run again and the others keep their results. Waits for it
    and prints its id and counts; its whole results are the new job's (`burla jobs
    result NEW_ID`). Exits 1 when an input failed again or did not run.

    The job must have ended (cancel a running one first). It runs with the job's
    resources, retries and timeout, on the default image of its Python, with the
    packages its function needs installed from this machine's environment, as a call
    would.

    \b
    Examples:
      burla jobs rerun job-1795615775-3fa9c2d1
      burla jobs rerun job-1795615775-3fa9c2d1 --failed-only
    """
    from burla.client.rerun import rerun

    session(backend)  # exit 3 when no cluster runs, rather than starting one
    with contextlib.redirect_stdout(sys.stderr):  # what its inputs print
        done = rerun(job_id, failed_only=failed_only, backend=backend)
    job = done.job
    counts = job.get("counts") or {}

    def show() -> None:
        click.echo(
            f"{done.job_id}: {job['state']} (resumes {job_id}), {counts.get('succeeded', 0)} "
            f"succeeded, {counts.get('failed', 0)} failed, {counts.get('never_run', 0)} never ran"
        )
        if job.get("failure"):
            failure = job["failure"]
            click.echo(
                f"first failed input: {failure['input']}, {failure['type']}: {failure['message']}"
            )
        if job.get("error"):
            click.echo(job["error"])
        click.echo(f"its results: burla jobs result {done.job_id}")

    emit(job, as_json, show)
    if job["state"] != "succeeded":
        raise SystemExit(JOB_FAILED)


@jobs.command("show")
@click.argument("job_id")
@cluster_options
def jobs_show(job_id: str, backend: str | None, as_json: bool) -> None:
    """A job's state, its inputs by status, why each failed input failed, and its node
    time and cost. Exits 1 when the job failed.

    \b
    Example:
      burla jobs show job-1795615775-3fa9c2d1
    """
    connection = session(backend)
    job = connection.call("GET", f"/jobs/{job_id}").json()
    held = "inputs" in job
    errors = connection.call("GET", f"/jobs/{job_id}/errors").json()["errors"] if held else []

    def show() -> None:
        click.echo(f"{job_id}: {job['state']}, {job['spec']['n_inputs']} inputs")
        if job["spec"].get("resumes"):
            only = ", only its failed inputs" if job["spec"].get("resume_failed_only") else ""
            click.echo(f"resumes {job['spec']['resumes']}{only}")
        counts = job.get("counts")
        if counts:
            click.echo(
                f"{counts['succeeded']} succeeded, {counts['failed']} failed, "
                f"{counts['never_run']} never ran"
                + (f", {counts['unfinished']} not done yet" if counts["unfinished"] else "")
            )
        if job.get("failure"):
            failure = job["failure"]
            click.echo(
                f"first failed input: {failure['input']}, {failure['type']}: {failure['message']}"
            )
        if held:
            table(("status", "inputs"), sorted(job["inputs"].items()))
        if job.get("error"):
            click.echo(job["error"])
        for line in cost_lines(job):
            click.echo(line)
        for line in memory_lines(job):
            click.echo(line)
        for error in errors:
            click.echo(f"input {error['input']} failed:\n{error['text'].rstrip()}")

    emit({**job, "errors": errors}, as_json, show)
    if job["state"] in ("failed", "canceled"):
        raise SystemExit(JOB_FAILED)


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@cluster_options
def jobs_logs(job_id: str, follow: bool, backend: str | None, as_json: bool) -> None:
    """What a job's inputs printed, each line with its input, and why inputs failed.

    With --json, one JSON object per line: {"input", "stream", "text"}.

    \b
    Example:
      burla jobs logs job-1795615775-3fa9c2d1 --follow
    """
    from burla.client.connection import RECONNECT_S

    connection = session(backend)
    cursor = 0
    while True:
        params = {"after": cursor, "wait": 10 if follow else 0}
        # Following, it waits out a main_service that restarts: the next one reads on.
        retry_for_s = RECONNECT_S if follow else 0.0
        path = f"/jobs/{job_id}/logs"
        page = connection.call("GET", path, params=params, retry_for_s=retry_for_s).json()
        for line in page["lines"]:
            if as_json:
                click.echo(json.dumps(line))
            else:
                label = "failed" if line["stream"] == "error" else line["stream"]
                where = "burla" if line["input"] is None else line["input"]  # lines not kept
                text = line["text"].rstrip("\n").replace("\n", f"\n[{where}] ")
                click.echo(f"[{where}] {text}", err=label != "stdout")
        cursor = page["next"]
        if not page["lines"] and (not follow or page["state"] != "running"):
            return


@jobs.command("cancel")
@click.argument("job_id")
@cluster_options
def jobs_cancel(job_id: str, backend: str | None, as_json: bool) -> None:
    """Cancel a job: inputs not yet done never run; the job's nodes go back to standby.

    \b
    Example:
      burla jobs cancel job-1795615775-3fa9c2d1
    """
    connection = session(backend)
    connection.call("GET", f"/jobs/{job_id}")  # exit 4 for a job that does not exist
    answer = connection.call("POST", f"/jobs/{job_id}/cancel").json()
    emit(answer, as_json, lambda: click.echo(f"{job_id}: {answer['state']}"))


@jobs.command("result")
@click.argument("job_id")
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON list.")
@click.option(
    "--return-exceptions",
    is_flag=True,
    help="Print every result, a failed input's exception in its place, then exit 1 if any failed.",
)
def jobs_result(job_id: str, backend: str | None, as_json: bool, return_exceptions: bool) -> None:
    """Wait for a job (started with detach=True) and print its results, one per line.

    A result that is not JSON prints as its repr. Exits 1 when an input failed, with the
    remote traceback on stderr. With --return-exceptions every result is printed, a failed
    input's exception in its place (with --json as {"input", "error", "message"}), each
    failure's traceback on stderr, and the exit is 1 if any input failed.

    \b
    Examples:
      burla jobs result job-1795615775-3fa9c2d1 --json
      burla jobs result job-1795615775-3fa9c2d1 --return-exceptions
    """
    from burla.client.map import job_results
    from burla.core.errors import BudgetExceededError, BurlaError

    session(backend)  # exit 3 when no cluster runs, rather than starting one
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its printed lines; results go to stdout
            results = job_results(job_id, backend, return_exceptions=return_exceptions)
    except BurlaError:
        raise
    except Exception as error:  # the function's own exception, re-raised here
        _print_failure(job_id, error)
        raise SystemExit(JOB_FAILED) from None
    failures = {n: r for n, r in enumerate(results) if _failed_input(n, r)}
    over_budget = [f for f in failures.values() if isinstance(f, BudgetExceededError)]
    if over_budget:  # the same for every input it stopped: said once
        click.echo(f"burla: {over_budget[0]}", err=True)
    for failure in failures.values():
        if not isinstance(failure, BudgetExceededError):
            _print_failure(job_id, failure)
    shown = [_failure_json(n, r) if n in failures else r for n, r in enumerate(results)]
    if as_json:
        click.echo(json.dumps(shown, default=repr))
    else:
        for value in results:
            click.echo(repr(value))
    if failures:
        raise SystemExit(JOB_FAILED)


def _failed_input(index: int, result: Any) -> bool:
    """Whether `result` is the exception that stands for input `index`'s failure."""
    return isinstance(result, BaseException) and (
        getattr(result, "burla_input_index", None) == index
    )


def _print_failure(job_id: str, error: BaseException) -> None:
    index = getattr(error, "burla_input_index", "?")
    click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
    click.echo(f"burla: input {index} of {job_id} raised {error!r}", err=True)


def _failure_json(index: int, error: BaseException) -> dict[str, Any]:
    return {"input": index, "error": type(error).__name__, "message": str(error)}


def _clock(epoch_s: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s)) if epoch_s else ""


@jobs.command("repro")
@click.argument("job_id")
@click.argument("index", type=click.IntRange(min=0))
@backend_option
@click.option("--pdb", "debug", is_flag=True, help="On an exception, a post-mortem debugger.")
@click.option(
    "--to",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the function, the input and a script that runs them here; run nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def jobs_repro(
    job_id: str,
    index: int,
    backend: str | None,
    debug: bool,
    folder: Path | None,
    as_json: bool,
) -> None:
    """Run input INDEX of a job again here, in this Python: the job's function called on
    that input's arguments as a worker calls it. Prints what it returns (exit 0) or its
    exception's traceback (exit 1). The modules the function imports must be importable
    here. With --to, writes function.pkl, input.pkl and repro.py (needing only
    cloudpickle) to a folder to share, and runs nothing.

    \b
    Examples:
      burla jobs repro job-1795615775-3fa9c2d1 7
      burla jobs repro job-1795615775-3fa9c2d1 7 --pdb
      burla jobs repro job-1795615775-3fa9c2d1 7 --to repro-7 && python repro-7/repro.py
    """
    from burla.client.repro import fetch_kept_input, frames_after_burla, run

    kept = fetch_kept_input(session(backend), job_id, index)
    if folder is not None:
        script = kept.write(folder)
        emit(
            {"folder": str(folder), "script": str(script)},
            as_json,
            lambda: click.echo(
                f"wrote input {index} of {job_id} to {folder}/; run it with\n"
                f"  python {script}          (or --pdb to debug its exception)"
            ),
        )
        return
    function, arguments = kept.load()
    try:
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result = run(function, arguments, debug=debug)
    except (Exception, SystemExit) as error:  # sys.exit in the function fails it too
        if not debug:  # with --pdb the traceback came before the debugger
            shown = traceback.format_exception(type(error), error, frames_after_burla(error))
            click.echo("".join(shown).rstrip(), err=True)
        click.echo(f"burla: input {index} of {job_id} raised {error!r}", err=True)
        if as_json:
            click.echo(json.dumps(_failure_json(index, error)))
        raise SystemExit(JOB_FAILED) from None
    click.echo(json.dumps(result, default=repr) if as_json else repr(result))


def memory_lines(job: dict[str, Any]) -> list[str]:
    """The inputs that ran out of memory and succeeded with more, as lines."""
    from burla.core.memory import describe_gb

    memory = job.get("memory")
    if not memory:
        return []
    lines = [
        f"input {grew['input']} ran out of memory with "
        f"{describe_gb(grew['ran_out_with'])}; "
        f"it succeeded with {grew['succeeded_with']:g} GB"
        for grew in memory["grew"]
    ]
    if memory["count"] > len(lines):
        lines.append(f"and {memory['count'] - len(lines)} more inputs that grew")
    return lines
