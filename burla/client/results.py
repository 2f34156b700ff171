"""A job's results, followed as its event stream tells them or read back once it is done;
an input's failure is raised as the exception that stands for it, or (`return_exceptions`)
stands in the results in the input's place."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import cloudpickle

from burla.client.connection import WAIT_S, Connection
from burla.client.progress import JobProgress
from burla.client.remote_traceback import with_source_files
from burla.core import stream_wire, wire
from burla.core.errors import (
    BudgetExceededError,
    FunctionLoadError,
    InputTimeoutError,
    JobError,
    JobInterruptedError,
    NodeLostError,
    OutOfMemoryError,
    RemoteError,
    WorkerCrashedError,
)

_FAILURES = {
    "worker_died": WorkerCrashedError,
    "out_of_memory": OutOfMemoryError,
    "timed_out": InputTimeoutError,
    "lost": NodeLostError,
}


def follow(
    connection: Connection,
    job_id: str,
    total: int,
    *,
    ordered: bool,
    spinner: bool,
    cancel: bool = True,
    first: bytes | None = None,
    return_exceptions: bool = False,
) -> Generator[Any, None, None]:
    """Results as they come, starting with the events in `first` (as submitting the job
    gave); on an error or Ctrl-C the job is canceled (if `cancel`). With
    `return_exceptions` a failed input's exception is yielded in its place, and the job
    goes on: only errors that are not an input's end it."""
    try:
        with JobProgress(total, spinner) as progress:
            yield from _results(
                connection, job_id, total, ordered, progress, first, return_exceptions
            )
    except KeyboardInterrupt:
        raise interrupted(connection, job_id, cancel=cancel) from None
    except BaseException as error:
        if cancel:  # an input's error stops the job there: it failed
            connection.cancel(job_id, failed=getattr(error, "burla_input_index", None) is not None)
        raise


def interrupted(connection: Connection, job_id: str, *, cancel: bool) -> JobInterruptedError:
    """Ctrl-C: cancel the job on the cluster (if `cancel`) and say so."""
    if cancel:
        connection.cancel(job_id)
        return JobInterruptedError(f"interrupted: job {job_id} was canceled on the cluster")
    return JobInterruptedError(f"interrupted; job {job_id} goes on on the cluster")


def _results(
    connection: Connection,
    job_id: str,
    total: int,
    ordered: bool,
    progress: JobProgress,
    first: bytes | None,
    return_exceptions: bool,
) -> Iterator[Any]:
    done = 0
    seen: set[int] = set()
    waiting: dict[int, Any] = {}
    next_index = 0
    cursor, body, run = 0, first, None
    budget: stream_wire.BudgetStop | None = None
    while True:
        if body is None:
            params = {"after": cursor, "wait": WAIT_S}
            body = connection.call_reviving("GET", f"/jobs/{job_id}/events", params=params).content
        head, events = stream_wire.read_stream(body)
        if run is not None and head.run != run and cursor:
            # A main_service that restarted took the job over: its stream starts anew.
            cursor, body, run = 0, None, head.run
            continue
        run = head.run
        for event, payload in events:
            match event:
                case stream_wire.JobLine(_, stream, text):
                    progress.print(text, stream)
                case stream_wire.JobResult(index, kind):
                    if index in seen:
                        continue  # told again by a main_service that took the job over
                    seen.add(index)
                    value = decode_result(index, kind, payload, return_exceptions)
                    done += 1
                    progress.advance(done)
                    if not ordered:
                        yield value
                        continue
                    waiting[index] = value
                    while next_index in waiting:
                        yield waiting.pop(next_index)
                        next_index += 1
                case stream_wire.BudgetStop():
                    budget = event
                case stream_wire.JobDone(state, error):
                    if budget is not None:
                        stop = _budget_fields(budget)
                        if not return_exceptions:
                            raise over_budget(job_id, total, stop)
                        # Every input has its place: those that did not finish, the error.
                        later = range(next_index if ordered else 0, total)
                        for index in later:
                            if index in waiting:
                                yield waiting.pop(index)
                            elif index not in seen:
                                yield over_budget(job_id, total, stop, index)
                        return
                    _check_end(job_id, state, error, total - done)
                    return
        cursor, body = head.next, None


def _check_end(job_id: str, state: str, error: str | None, missing: int) -> None:
    """Raise what a job's end means for its caller, unless it gave every result: its
    function did not load, it was canceled, or results are missing."""
    if error:
        raise FunctionLoadError(
            f"the workers could not load the function of job {job_id}:\n"
            f"{error}\nIs every module it uses importable on the cluster?"
        )
    if state == "canceled":
        raise JobError(f"job {job_id} was canceled")
    if missing:
        raise JobError(f"job {job_id} ended with {missing} results missing")


def _budget_fields(stop: stream_wire.BudgetStop) -> dict[str, Any]:
    return {
        "max_cost": stop.max_cost,
        "cost": stop.cost,
        "node_seconds": stop.node_seconds,
        "finished": stop.finished,
    }


def over_budget(
    job_id: str, n_inputs: int, stop: dict[str, Any], index: int | None = None
) -> BudgetExceededError:
    """The error of a job stopped at its max_cost (`stop`: the fields of stream_wire.BudgetStop);
    with `index`, standing in the place of an input that did not finish."""
    finished = int(stop["finished"])
    reached = (
        f"its nodes came to cost ${stop['cost']:,.4f}, reaching its max_cost="
        f"${stop['max_cost']:g}, after {finished} of {n_inputs} inputs finished"
    )
    if index is not None:
        message = f"input {index} did not finish: job {job_id} was stopped, {reached}"
    else:
        message = (
            f"job {job_id} was stopped: {reached}. Their results are kept: `burla jobs "
            f"result {job_id} --return-exceptions` (or job_results({job_id!r}, "
            "return_exceptions=True)) gives them, with a BudgetExceededError in the place "
            "of each input that did not finish"
        )
    return BudgetExceededError(
        message,
        job_id=job_id,
        max_cost=float(stop["max_cost"]),
        cost=float(stop["cost"]),
        finished=finished,
        n_inputs=n_inputs,
        input_index=index,
    )


def stored_results(
    connection: Connection, job_id: str, job: dict[str, Any], return_exceptions: bool = False
) -> list[Any]:
    """A finished job's results, read back from the Store; a failed input's exception is
    raised, or with `return_exceptions` stands in its place."""
    if job.get("state") == "running":
        raise JobError(f"job {job_id} is still running but its main_service restarted")
    if job.get("error"):
        raise FunctionLoadError(
            f"the workers could not load job {job_id}'s function:\n{job['error']}"
        )
    stored: dict[int, tuple[str, bytes]] = {}
    after: str | None = ""
    while after is not None:
        answer = connection.call("GET", f"/jobs/{job_id}/results", params={"after": after})
        for event, payload in stream_wire.read_events(wire.decode_all(answer.content)):
            if isinstance(event, stream_wire.JobResult):
                stored.setdefault(event.index, (event.kind, payload))  # the first counts
        after = answer.headers.get(stream_wire.NEXT_PAGE.lower())
    total = job["spec"]["n_inputs"]
    missing = total - len(stored.keys() & range(total))
    stop = job.get("budget_stop")
    if missing and stop is not None:
        if not return_exceptions:
            raise over_budget(job_id, total, stop)
        return [
            decode_result(index, *stored[index], True)
            if index in stored
            else over_budget(job_id, total, stop, index)
            for index in range(total)
        ]
    if missing:
        raise JobError(
            f"job {job_id} ended ({job['state']}) with {missing} of {total} results missing"
        )
    return [decode_result(index, *stored[index], return_exceptions) for index in range(total)]


def decode_result(index: int, kind: str, payload: bytes, return_exceptions: bool = False) -> Any:
    """A result's value, or the exception that stands for it: raised, or returned in its
    place with `return_exceptions`."""
    if kind == "ok":
        return cloudpickle.loads(payload)
    error = failure_of(index, kind, payload)
    if return_exceptions:
        return error
    raise error


def failure_of(index: int, kind: str, payload: bytes) -> BaseException:
    """The exception that stands for input `index`'s failure of `kind`: the function's own
    (with `burla_input_index` and the remote traceback, its frames in the caller's files),
    a RemoteError for one that could not be pickled back, or the JobError of a worker that
    died, ran out of memory or time, or a node lost."""
    if kind == "raised":
        error = cloudpickle.loads(payload)
        error.burla_input_index = index
        return with_source_files(error)
    details = json.loads(payload)
    if kind == "raised_text":
        return RemoteError(
            f"input {index} raised {details['type']}: {details['message']} (the exception "
            f"could not be pickled back; remote traceback below)\n{details['traceback']}",
            index,
            details["type"],
            details["traceback"],
        )
    return _FAILURES[kind](details["message"], index)
