"""remote_parallel_map: ship a function and inputs to a cluster, bring back results."""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Callable, Generator, Iterable, Sequence
from pickle import dumps
from typing import Any, get_args

from burla.client.build_context import context_archive
from burla.client.connection import error_from
from burla.client.environment import environment_for
from burla.client.fit import INLINE_LIMIT
from burla.client.recent_jobs import RecentJob, cluster_of, recent_jobs_path, remember
from burla.client.results import follow, interrupted, stored_results
from burla.client.serialize import dump_input, dumps_function, dumps_input, known_size
from burla.client.session import Session
from burla.client.uploads import Payload, check_size, max_payload, put_signed, upload_targets
from burla.core.clock import WallClock
from burla.core.environment import RUNNING_PYTHON
from burla.core.errors import ClusterUnavailableError, InvalidRequestError, SourceNotKeptError
from burla.core.plain import PLAIN_PROTOCOL, SMALL_PLAIN
from burla.core.settings import Backend, Settings, load_settings

__all__ = ["Session", "job_results", "remote_parallel_map"]

FIRST_WAIT_S = 0.1
"""How long the job request may wait for the job to finish: a short job's results come
back in the same answer."""


def remote_parallel_map(
    function_: Callable[..., Any],
    inputs: Iterable[Any],
    *,
    func_cpu: int = 1,
    func_ram: float = 4,
    func_gpu: int | None = None,
    image: str | None = None,
    dockerfile: str | None = None,
    build_context: str | None = None,
    backend: str | None = None,
    max_parallelism: int | None = None,
    generator: bool = False,
    ordered: bool = True,
    unpack_tuples: bool = True,
    retries: int = 0,
    grow_memory: bool = True,
    timeout: float | None = None,
    spinner: bool = True,
    detach: bool = False,
    return_exceptions: bool = False,
    max_cost: float | None = None,
    seconds_per_input: float | None = None,
    resume: str | None = None,
) -> Any:
    """Run `function_` on every input on the cluster; return the results in input order.

    A tuple input is passed as *args (unless `unpack_tuples=False`). With
    `generator=True` results are yielded as they arrive; `ordered=False` gives them in
    completion order. `detach=True` returns the job id at once. An exception the function
    raises is re-raised here as its own type, with `burla_input_index` set, and the job is
    canceled.

    `return_exceptions=True` keeps going past failed inputs, as asyncio.gather's does:
    every input runs, and one that failed (on its last try, `retries` counting) stands in
    the results in its place as the exception that would have been raised: the function's
    own (its type, remote traceback, `burla_input_index`), or the JobError of a worker
    that crashed (WorkerCrashedError, OutOfMemoryError), an input that timed out
    (InputTimeoutError), a node lost (NodeLostError), an exception that could not be
    pickled back (RemoteError). The job still ends "failed" on the cluster (`burla jobs
    show` counts its failed inputs). Errors that are no input's (FunctionLoadError, a
    canceled job, a cluster that is gone, Ctrl-C) are raised as always.

    `retries=N` runs an input up to N more times when it raises, its worker dies or it
    passes `timeout`. An input whose worker went over `func_ram` runs each retry with
    twice the memory it ran out with (fewer, bigger workers on its node), up to its
    node's whole memory; `grow_memory=False` keeps every try at `func_ram`. One that ran
    out of memory with a whole node fails at once with OutOfMemoryError saying so.

    `dockerfile` names a Dockerfile to build the workers' image from (once per text and
    build context), and `build_context` the directory its COPY and ADD read.

    `max_cost` (USD) caps what the job's nodes may cost (their time on it at their price
    per hour: Compute Engine's list price, or the node type's price_per_hour). With
    `seconds_per_input` (your estimate of one input's run time) a job that would cost
    more even if every node were busy throughout is refused before anything runs
    (EstimateOverBudgetError); without it only its running cost is known. A job whose
    cost reaches `max_cost` is stopped and BudgetExceededError raised; the results of
    the inputs that finished are kept (job_results(job_id, return_exceptions=True)). With
    `return_exceptions=True` they are returned, the BudgetExceededError in the place of
    each input that did not finish.

    `resume=JOB_ID` resumes an earlier job (one that failed, was canceled, or lost its
    caller: `burla jobs --mine` lists this machine's recent jobs): it is a new job with
    the same inputs (the function may be another, fixed one), where only the inputs
    that have no successful result in that job run; the others' results are taken from
    it. The results are the whole job's, as any call's. Other inputs than that job's
    raise ResumeMismatchError; a job still running, unknown or no longer kept raises
    ResumeError.
    """
    if dockerfile is not None and image is not None:
        raise InvalidRequestError("pass image= or dockerfile=, not both")
    if build_context is not None and dockerfile is None:
        raise InvalidRequestError("build_context= is the directory of a dockerfile=; pass both")
    if resume is not None and not isinstance(resume, str):
        raise InvalidRequestError(f"resume= takes a job's id (text), not {resume!r}")
    settings = _settings(backend)
    function = dumps_function(function_)
    payloads = _pickled(function, inputs, unpack_tuples)
    spec: dict[str, Any] = {
        "n_inputs": len(payloads),
        "func_cpu": func_cpu,
        "func_ram": func_ram,
        "func_gpu": func_gpu or 0,
        "image": image,
        "max_parallelism": max_parallelism,
        "retries": retries,
        "grow_memory": grow_memory,
        "timeout_s": timeout,
        "python_version": RUNNING_PYTHON,
    }
    if max_cost is not None:
        spec |= {"max_cost": max_cost, "seconds_per_input": seconds_per_input}
    if resume is not None:
        spec["resumes"] = resume
    job = Submission(settings, _name_of(function_), function, payloads, spec, dockerfile)
    job_id = job.start(build_context, detach=detach)
    if detach:
        return job_id
    results = job.follow(ordered=ordered, spinner=spinner, return_exceptions=return_exceptions)
    if generator:
        return results
    return list(results)


class Submission:
    """One job on its way to the cluster: its function, inputs and spec; started (and
    remembered as this user's, see recent_jobs), then followed."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        function: bytes,
        payloads: Sequence[Payload],
        spec: dict[str, Any],
        dockerfile: str | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.function = function
        self.payloads = payloads
        self.spec = spec
        self.dockerfile = dockerfile
        self.job_id = f"job-{secrets.token_hex(8)}"
        self.session: Session | None = None
        self.first: bytes | None = None

    def start(self, build_context: str | None = None, *, detach: bool = False) -> str:
        """Submit the job (with a short wait for its first results, unless `detach`);
        its id."""
        settings, spec, function, payloads = self.settings, self.spec, self.function, self.payloads
        session = _with_environment(spec, function, self.dockerfile, settings)
        job_id = self.job_id
        if build_context is not None:
            spec["build_context"] = upload_context(session, job_id, context_archive(build_context))
        wait = 0.0 if detach else FIRST_WAIT_S
        try:
            session, first = _submitted(session, settings, job_id, spec, function, payloads, wait)
        except SourceNotKeptError:
            # The cluster removed sources this process sent before: they go again, once.
            session.sent_sources.clear()
            session = _with_environment(spec, function, self.dockerfile, settings)
            session, first = _submitted(session, settings, job_id, spec, function, payloads, wait)
        self.session, self.first = session, first
        # Remembered once the cluster took it, before its results are followed: a caller
        # that crashes meanwhile finds it with `burla jobs --mine`.
        if not settings.job_token:
            now = WallClock().now()
            job = RecentJob(job_id, now, self.name, cluster_of(settings), spec.get("resumes"))
            remember(job, recent_jobs_path(settings))
        return job_id

    def follow(
        self, *, ordered: bool, spinner: bool, return_exceptions: bool
    ) -> Generator[Any, None, None]:
        """The started job's results as they come (see results.follow)."""
        assert self.session is not None, "start the job first"
        return follow(
            self.session,
            self.job_id,
            len(self.payloads),
            ordered=ordered,
            spinner=spinner,
            first=self.first,
            return_exceptions=return_exceptions,
        )


def _name_of(function_: Callable[..., Any]) -> str:
    """The function's name, as its code calls it."""
    return str(getattr(function_, "__qualname__", None) or type(function_).__name__)


def _pickled(function: bytes, inputs: Iterable[Any], unpack_tuples: bool) -> list[Payload]:
    """Every input, pickled now or, when big, when it is uploaded; after checking that the
    function and the inputs pickled now are within the size limit. A number, True, False
    or None (the inputs of many a job of many inputs) is pickled at once, as dumps_input
    would: it is plain and never a tuple."""
    limit = max_payload()
    check_size("the function", len(function), limit)
    payloads: list[Payload] = []
    for n, value in enumerate(inputs):
        if type(value) in SMALL_PLAIN:
            payload = dumps((value,), PLAIN_PROTOCOL)
        elif known_size(value, unpack_tuples) > INLINE_LIMIT:
            payloads.append(functools.partial(dump_input, n, value, unpack_tuples))
            continue
        else:
            payload = dumps_input(n, value, unpack_tuples)
        if len(payload) > limit:
            check_size(f"input {n}", len(payload), limit)
        payloads.append(payload)
    return payloads


def _with_environment(
    spec: dict[str, Any], function: bytes, dockerfile: str | None, settings: Settings
) -> Session:
    """Add what the function needs installed to `spec`: its packages, the Dockerfile and
    the sources the cluster has not got yet, uploaded. The session sources go to."""
    environment = environment_for(function)
    if environment.packages:
        spec["packages"] = [dataclasses.asdict(package) for package in environment.packages]
    if dockerfile is not None:
        spec["dockerfile"] = read_dockerfile(dockerfile)
    session = Session.for_settings(settings)
    if environment.sources and (keys := session.upload_sources(environment.sources)):
        spec["sources"] = keys
    return session


def _submitted(
    session: Session,
    settings: Settings,
    job_id: str,
    spec: dict[str, Any],
    function: bytes,
    payloads: Sequence[Payload],
    wait: float,
) -> tuple[Session, bytes | None]:
    """Submit the job; the session it went to and the first answer."""
    try:
        try:
            first = session.submit(job_id, spec, function, payloads, wait)
        except ClusterUnavailableError:  # it stopped since we last used it: start it again
            if settings.backend == "gcp":
                raise
            session = Session.for_settings(settings, fresh=True)
            first = session.submit(job_id, spec, function, payloads, wait, resent=True)
    except KeyboardInterrupt:
        raise interrupted(session, job_id, cancel=True) from None
    session.sent_sources.update(spec.get("sources", ()))
    return session, first


def job_results(
    job_id: str, backend: str | None = None, *, return_exceptions: bool = False
) -> list[Any]:
    """The results of a job started with `detach=True`, in input order, once it is done.

    Raises as remote_parallel_map would (the function's own exception, or a JobError);
    with `return_exceptions=True` a failed input's exception stands in its place instead.
    A detached job runs every input whatever fails: nothing cancels it at the first error.
    """
    session = Session.for_settings(_settings(backend))
    response = session.http.request("GET", f"/jobs/{job_id}")
    if response.status_code >= 400:
        raise error_from(response, f"GET /jobs/{job_id}")
    job = response.json()
    if "inputs" in job:  # still known to main_service: follow it to the end
        total = sum(job["inputs"].values())
        results = follow(
            session,
            job_id,
            total,
            ordered=True,
            spinner=False,
            cancel=False,
            return_exceptions=return_exceptions,
        )
        return list(results)
    return stored_results(session, job_id, job, return_exceptions)


def upload_context(session: Session, job_id: str, archive: bytes) -> str:
    """Upload a build context for job `job_id`; its blob key (it goes when the job ends)."""
    [(key, url)] = upload_targets(session, 1, job_id)
    put_signed(url, archive)
    return key


def read_dockerfile(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as error:
        raise InvalidRequestError(
            f"dockerfile={path!r} cannot be read ({error.strerror}); pass the path of a Dockerfile"
        ) from error


def _settings(backend: str | None) -> Settings:
    """The settings, with `backend` in place of theirs when it is given."""
    settings = load_settings()
    if backend is None:
        return settings
    if backend not in get_args(Backend):
        raise InvalidRequestError(
            f"unknown backend {backend!r}; choose one of {', '.join(get_args(Backend))}"
        )
    return settings.replace(backend=backend)
