"""remote_parallel_map: ship a function and inputs to a cluster, bring back results."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import functools
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, ClassVar, get_args

import cloudpickle

from burla.client import local
from burla.client.environment import environment_for
from burla.client.fit import FUNCTION, INLINE_LIMIT, fit
from burla.client.http import HttpError, HttpPool, Response
from burla.client.progress import JobProgress
from burla.client.remote_traceback import with_source_files
from burla.client.serialize import dump_input, dumps_function, dumps_input, known_size
from burla.core import errors, wire
from burla.core.backoff import Backoff
from burla.core.environment import RUNNING_PYTHON
from burla.core.errors import (
    BackendError,
    BurlaError,
    ClusterUnavailableError,
    FunctionLoadError,
    InputTimeoutError,
    InvalidRequestError,
    JobError,
    JobInterruptedError,
    NodeLostError,
    OutOfMemoryError,
    PayloadTooLargeError,
    RemoteError,
    WorkerCrashedError,
)
from burla.core.limits import MAX_UPLOADS, RequestLimits
from burla.core.settings import JOB_TOKEN_ENV, Backend, Settings, config_path, load_settings

WAIT_S = 10.0
INSTALL_WAIT_S = 900.0
"""How long a job request may take when the cluster installs packages or makes an
image for it first."""
FIRST_WAIT_S = 0.1
"""How long the job request may wait for the job to finish: a short job's results come
back in the same answer."""
_FAILURES = {
    "worker_died": WorkerCrashedError,
    "out_of_memory": OutOfMemoryError,
    "timed_out": InputTimeoutError,
    "lost": NodeLostError,
}


RECONNECT_S = 60.0
"""How long a call keeps asking a cluster that does not answer (a dropped connection,
a main_service restarting) before it gives up."""
RETRY_FIRST_PAUSE_S = 0.1
RETRY_MAX_PAUSE_S = 2.0

UPLOAD_THREADS = 4
"""Big inputs pickled and uploaded side by side (writing to disk or a socket frees the GIL)."""

Payload = bytes | Callable[[IO[bytes]], None]
"""An input pickled in memory, or, for one known to be big, what pickles it into a file:
straight into the blob store, without a copy in memory first."""


def max_payload() -> int:
    return int(os.environ.get("BURLA_MAX_PAYLOAD_MB", "1024")) << 20


def check_size(what: str, size: int) -> None:
    limit = max_payload()
    if size > limit:
        raise PayloadTooLargeError(
            f"{what} pickles to {size / 2**20:.1f} MB, over the {limit >> 20} MB limit "
            "(BURLA_MAX_PAYLOAD_MB); pass a path or URL and load the data inside the function"
        )


def remote_parallel_map(
    function_: Callable[..., Any],
    inputs: Iterable[Any],
    *,
    func_cpu: int = 1,
    func_ram: float = 4,
    func_gpu: int | None = None,
    image: str | None = None,
    dockerfile: str | None = None,
    backend: str | None = None,
    max_parallelism: int | None = None,
    generator: bool = False,
    ordered: bool = True,
    unpack_tuples: bool = True,
    retries: int = 0,
    timeout: float | None = None,
    spinner: bool = True,
    detach: bool = False,
) -> Any:
    """Run `function_` on every input on the cluster; return the results in input order.

    A tuple input is passed as *args (unless `unpack_tuples=False`). With
    `generator=True` results are yielded as they arrive; `ordered=False` gives them in
    completion order. `detach=True` returns the job id at once. An exception the function
    raises is re-raised here as its own type, with `burla_input_index` set.
    """
    if dockerfile is not None and image is not None:
        raise InvalidRequestError("pass image= or dockerfile=, not both")
    settings = load_settings()
    if backend is not None:
        settings = settings.replace(backend=_backend(backend))
    function = dumps_function(function_)
    payloads: list[Payload] = []
    for n, value in enumerate(inputs):
        if known_size(value, unpack_tuples) > INLINE_LIMIT:
            payloads.append(functools.partial(dump_input, n, value, unpack_tuples))
        else:
            payloads.append(dumps_input(n, value, unpack_tuples))
    check_size("the function", len(function))
    for n, payload in enumerate(payloads):
        if isinstance(payload, bytes):
            check_size(f"input {n}", len(payload))
    spec: dict[str, Any] = {
        "n_inputs": len(payloads),
        "func_cpu": func_cpu,
        "func_ram": func_ram,
        "func_gpu": func_gpu or 0,
        "image": image,
        "max_parallelism": max_parallelism,
        "retries": retries,
        "timeout_s": timeout,
        "python_version": RUNNING_PYTHON,
    }
    environment = environment_for(function)
    if environment.packages:
        spec["packages"] = [dataclasses.asdict(package) for package in environment.packages]
    if dockerfile is not None:
        spec["dockerfile"] = read_dockerfile(dockerfile)
    session = Session.for_settings(settings)
    if environment.sources and (keys := session.upload_sources(environment.sources)):
        spec["sources"] = keys
    wait = 0.0 if detach else FIRST_WAIT_S
    job_id = f"job-{secrets.token_hex(8)}"
    try:
        try:
            first = session.submit(job_id, spec, function, payloads, wait)
        except ClusterUnavailableError:  # it stopped since we last used it: start it again
            if settings.backend == "gcp":
                raise
            session = Session.for_settings(settings, fresh=True)
            first = session.submit(job_id, spec, function, payloads, wait)
    except KeyboardInterrupt:
        raise session.interrupted(job_id, cancel=True) from None
    session.sent_sources.update(spec.get("sources", ()))
    if detach:
        return job_id
    results = session.follow(job_id, len(payloads), ordered=ordered, spinner=spinner, first=first)
    if generator:
        return results
    return list(results)


class Session:
    """A client's connection to one cluster's main_service, shared by every call in the
    process (and thread-safe), so that a warm call costs no new connection."""

    _cached: ClassVar[dict[str, Session]] = {}

    def __init__(self, cluster: local.ClusterInfo, local_backend: str | None = None) -> None:
        self.cluster = cluster
        self.local_backend = local_backend
        """"local" or "docker" for this machine's own cluster, which the client may start."""
        self.stamp: tuple[int, ...] | None = None
        """What a local cluster's cluster.json looked like when it last named this one."""
        self.http = _pool(cluster)
        self.job_request_limit = RequestLimits.from_environ(os.environ).job_request
        """The size of request the cluster takes for a job, as far as this client knows."""
        self.sent_sources: set[str] = set()
        """Source archives a job took: the cluster keeps them."""

    @classmethod
    def for_settings(cls, settings: Settings, fresh: bool = False) -> Session:
        """The session with the cluster `settings` name: a local one is started if it is
        not running; a cloud one must be."""
        if settings.job_token:
            return cls.for_job(settings, settings.job_token)
        if settings.backend != "gcp":
            return cls.for_local_cluster(settings.backend, fresh)
        if not settings.main_url or not settings.token:
            raise ClusterUnavailableError(
                "backend 'gcp' needs a running cluster's address and token: set main_url "
                f"and token in {config_path(os.environ)} (or BURLA_MAIN_URL and BURLA_TOKEN); "
                "see the README's 'Google Cloud' section to start one"
            )
        session = cls._cached.get(settings.main_url)
        if session is None or session.cluster.token != settings.token:
            if session is not None:
                session.close()  # the token changed: its connections are the old token's
            cluster = local.ClusterInfo(settings.main_url, settings.token, pid=0, cpus=0)
            session = cls._cached[settings.main_url] = cls(cluster)
        return session

    @classmethod
    def for_job(cls, settings: Settings, token: str) -> Session:
        """Inside a job's worker: the session with the job's own cluster, which is running,
        as the job's owner. The job's token, not the cluster's, is what user code holds."""
        if settings.backend == "gcp":
            url = settings.main_url
        else:
            cluster = local.read(local.local_dir(settings.backend))
            url = cluster.url if cluster is not None else None
        if not url:
            raise ClusterUnavailableError(
                f"this job's cluster ({settings.backend}) cannot be found from inside it"
            )
        key = f"{url} as {JOB_TOKEN_ENV}"
        session = cls._cached.get(key)
        if session is None or session.cluster.token != token:
            if session is not None:
                session.close()  # another job's token: its connections are that job's
            session = cls._cached[key] = cls(local.ClusterInfo(url, token, pid=0, cpus=0))
        return session

    @classmethod
    def for_local_cluster(cls, backend: str = "local", fresh: bool = False) -> Session:
        """The session with this machine's cluster of `backend` ("local" or "docker"),
        which is started if it is not running."""
        root = local.local_dir(backend)
        key = str(root)
        session = cls._cached.get(key)
        stamp = local.stamp(root)
        if session is not None and not fresh:
            if stamp is not None and stamp == session.stamp:
                return session  # cluster.json is as it was: the same cluster
            if local.read(root) == session.cluster:
                session.stamp = stamp
                return session
        if session is not None:
            session.close()
        session = cls._cached[key] = cls(local.start(root, backend=backend), backend)
        session.stamp = local.stamp(root)
        return session

    def close(self) -> None:
        self.http.close()

    @classmethod
    def close_all(cls) -> None:
        """Close every cached session (at exit, or when a cluster is stopped)."""
        for session in cls._cached.values():
            session.close()
        cls._cached.clear()

    def call(self, method: str, path: str, *, retry_for_s: float = 0.0, **kwargs: Any) -> Response:
        response, _ = self.answered(method, path, retry_for_s=retry_for_s, **kwargs)
        if response.status_code >= 400:
            raise error_from(response, f"{method} {path}")
        return response

    def answered(
        self, method: str, path: str, *, retry_for_s: float, **kwargs: Any
    ) -> tuple[Response, bool]:
        """The answer to a request, sent again while it gets none (a dropped connection,
        a cluster restarting) for up to `retry_for_s`; and whether an earlier try went
        unanswered (so the cluster may have carried it out already). An error status is
        the caller's to read."""
        backoff = Backoff(
            RETRY_FIRST_PAUSE_S,
            RETRY_MAX_PAUSE_S,
            jitter=0.5,
            clock=time.monotonic,
            give_up_after_s=retry_for_s,
        )
        unanswered = False
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
                unanswered = unanswered or response.resent
                break
            except HttpError as error:
                gone = self.cluster.pid > 0 and not local.alive(self.cluster.pid)
                if gone or backoff.exhausted:
                    waited = f" (tried for {retry_for_s:g} s)" if retry_for_s else ""
                    raise ClusterUnavailableError(
                        f"the cluster did not answer {method} {path}{waited}: {error}; is it "
                        "running? (`burla local status`)"
                    ) from error
                unanswered = True
                time.sleep(backoff.pause())
        return response, unanswered

    def upload_sources(self, sources: dict[str, bytes]) -> dict[str, str]:
        """Upload the source archives this cluster was not sent yet; their blob keys."""
        new = {r: archive for r, archive in sources.items() if r not in self.sent_sources}
        if not new:
            return {}
        keys = {}
        for (requirement, archive), (key, url) in zip(
            new.items(), self.upload_targets(len(new)), strict=True
        ):
            put_signed(url, archive)
            keys[requirement] = key
        return keys

    def submit(
        self,
        job_id: str,
        spec: dict[str, Any],
        function: bytes,
        payloads: Sequence[Payload],
        wait: float,
    ) -> bytes | None:
        """Start the job; the answer (frames) holds its id and the events of its first
        `wait` seconds, all of them if it is done by then. None when the job was taken but
        its answer lost: its events are read from the start."""
        keys: dict[int, str] = {}
        head: dict[str, Any] = {"job_id": job_id, "spec": spec}
        sizes = [len(p) if isinstance(p, bytes) else None for p in payloads]
        moved = fit(len(json.dumps(head)), len(function), sizes, self.job_request_limit)
        function_big = FUNCTION in moved
        big = sorted(moved - {FUNCTION})
        if big or function_big:
            count = len(big) + int(function_big)
            targets = self.upload_targets(count, job_id)
            if function_big:
                key, url = targets.pop()
                put_signed(url, function)
                head["function_key"] = key
            with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="burla-upload") as pool:
                sent = [
                    pool.submit(upload, url, payloads[n], f"input {n}")
                    for n, (_, url) in zip(big, targets, strict=True)
                ]
                for done in sent:
                    done.result()
            keys = {n: key for n, (key, _) in zip(big, targets, strict=True)}
        frames: list[tuple[dict[str, Any], bytes]] = [(head, b"" if function_big else function)]
        for n, payload in enumerate(payloads):
            if n in keys:
                frames.append(({"i": n, "blob": keys[n]}, b""))
            else:
                assert isinstance(payload, bytes)
                frames.append(({"i": n}, payload))
        response, unanswered = self.answered(
            "POST",
            "/jobs",
            retry_for_s=RECONNECT_S,
            content=wire.encode_many(frames),
            params={"wait": wait},
            timeout_s=INSTALL_WAIT_S if _prepares(spec) else None,
        )
        if response.status_code == 409 and unanswered:
            return None  # an earlier try's answer was lost, but the cluster took the job
        try:
            if response.status_code >= 400:
                raise error_from(response, "POST /jobs")
        except PayloadTooLargeError as error:
            if error.limit is None or error.limit >= self.job_request_limit:
                raise
            self.job_request_limit = error.limit  # the cluster takes less than we thought
            return self.submit(job_id, spec, function, payloads, wait)
        return response.content

    def _events(self, job_id: str, params: dict[str, Any]) -> bytes:
        path = f"/jobs/{job_id}/events"
        try:
            return self.call("GET", path, retry_for_s=RECONNECT_S, params=params).content
        except ClusterUnavailableError:
            if self.local_backend is None or self.cluster.pid <= 0:
                raise
            # This machine's cluster died under the job: start it again; its new
            # main_service takes the job over from the Store.
            self._restart_local(self.local_backend)
            return self.call("GET", path, retry_for_s=RECONNECT_S, params=params).content

    def _restart_local(self, backend: str) -> None:
        root = local.local_dir(backend)
        cluster = local.start(root, backend=backend)
        self.http.close()
        self.cluster, self.http, self.stamp = cluster, _pool(cluster), local.stamp(root)

    def upload_targets(self, count: int, job_id: str | None = None) -> list[tuple[str, str]]:
        """`count` (key, signed URL) pairs to upload to, for job `job_id` (None: for no job
        in particular), asked for MAX_UPLOADS at a time."""
        targets: list[tuple[str, str]] = []
        for start in range(0, count, MAX_UPLOADS):
            wanted = min(MAX_UPLOADS, count - start)
            asked = {"count": wanted, "job_id": job_id, "first": start}
            uploads = self.call("POST", "/uploads", json_body=asked).json()
            targets += zip(uploads["keys"], uploads["urls"], strict=True)
        return targets

    def follow(
        self,
        job_id: str,
        total: int,
        *,
        ordered: bool,
        spinner: bool,
        cancel: bool = True,
        first: bytes | None = None,
    ) -> Generator[Any, None, None]:
        """Results as they come, starting with the events in `first` (as `submit` gave);
        on an error or Ctrl-C the job is canceled (if `cancel`)."""
        try:
            with JobProgress(total, spinner) as progress:
                yield from self._results(job_id, total, ordered, progress, first)
        except KeyboardInterrupt:
            raise self.interrupted(job_id, cancel=cancel) from None
        except BaseException:
            if cancel:
                self.cancel(job_id)
            raise

    def stored_results(self, job_id: str, job: dict[str, Any]) -> list[Any]:
        """A finished job's results, read back from the Store."""
        if job.get("state") == "running":
            raise JobError(f"job {job_id} is still running but its main_service restarted")
        if job.get("error"):
            raise FunctionLoadError(
                f"the workers could not load job {job_id}'s function:\n{job['error']}"
            )
        results: list[Any] = []
        after = -1
        while True:
            page = self.call("GET", f"/jobs/{job_id}/results", params={"after": after})
            events = list(wire.read_events(wire.decode_all(page.content)))
            if not events:
                break
            for event, payload in events:
                if isinstance(event, wire.JobResult):
                    results.append(decode_result(event.index, event.kind, payload))
                    after = event.index
        total = job["spec"]["n_inputs"]
        if len(results) < total:
            raise JobError(
                f"job {job_id} ended ({job['state']}) with "
                f"{total - len(results)} of {total} results missing"
            )
        return results

    def interrupted(self, job_id: str, *, cancel: bool) -> JobInterruptedError:
        """Ctrl-C: cancel the job on the cluster (if `cancel`) and say so."""
        if cancel:
            self.cancel(job_id)
            return JobInterruptedError(f"interrupted: job {job_id} was canceled on the cluster")
        return JobInterruptedError(f"interrupted; job {job_id} goes on on the cluster")

    def cancel(self, job_id: str) -> None:
        with contextlib.suppress(HttpError):  # a cluster that is gone runs nothing
            self.http.request("POST", f"/jobs/{job_id}/cancel", timeout_s=5)

    def _results(
        self, job_id: str, total: int, ordered: bool, progress: JobProgress, first: bytes | None
    ) -> Iterator[Any]:
        done = 0
        seen: set[int] = set()
        waiting: dict[int, Any] = {}
        next_index = 0
        cursor, body, run = 0, first, None
        while True:
            if body is None:
                body = self._events(job_id, {"after": cursor, "wait": WAIT_S})
            head, events = wire.read_stream(body)
            if run is not None and head.run != run and cursor:
                # A main_service that restarted took the job over: its stream starts anew.
                cursor, body, run = 0, None, head.run
                continue
            run = head.run
            for event, payload in events:
                match event:
                    case wire.JobLine(_, stream, text):
                        progress.print(text, stream)
                    case wire.JobResult(index, kind):
                        if index in seen:
                            continue  # told again by a main_service that took the job over
                        seen.add(index)
                        value = decode_result(index, kind, payload)
                        done += 1
                        progress.advance(done)
                        if not ordered:
                            yield value
                            continue
                        waiting[index] = value
                        while next_index in waiting:
                            yield waiting.pop(next_index)
                            next_index += 1
                    case wire.JobDone(state, error):
                        _check_end(job_id, state, error, total - done)
                        return
            cursor, body = head.next, None


atexit.register(Session.close_all)


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


def _pool(cluster: local.ClusterInfo) -> HttpPool:
    return HttpPool(cluster.url, {"authorization": f"Bearer {cluster.token}"}, WAIT_S + 30)


def job_results(job_id: str, backend: str | None = None) -> list[Any]:
    """The results of a job started with `detach=True`, in input order, once it is done.

    Raises as remote_parallel_map would (the function's own exception, or a JobError).
    """
    settings = load_settings()
    if backend is not None:
        settings = settings.replace(backend=_backend(backend))
    session = Session.for_settings(settings)
    response = session.http.request("GET", f"/jobs/{job_id}")
    if response.status_code >= 400:
        raise error_from(response, f"GET /jobs/{job_id}")
    job = response.json()
    if "inputs" in job:  # still known to main_service: follow it to the end
        total = sum(job["inputs"].values())
        return list(session.follow(job_id, total, ordered=True, spinner=False, cancel=False))
    return session.stored_results(job_id, job)


def read_dockerfile(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as error:
        raise InvalidRequestError(
            f"dockerfile={path!r} cannot be read ({error.strerror}); pass the path of a Dockerfile"
        ) from error


def _prepares(spec: dict[str, Any]) -> bool:
    """Whether the cluster may have to install packages or make an image for the job
    before it answers."""
    return bool(spec.get("packages") or spec.get("dockerfile") or spec.get("image"))


def _backend(name: str) -> Backend:
    if name not in get_args(Backend):
        raise InvalidRequestError(
            f"unknown backend {name!r}; choose one of {', '.join(get_args(Backend))}"
        )
    return name  # type: ignore[return-value]


def error_from(response: Response, request: str) -> BurlaError:
    """The BurlaError a service answered with, as its own type where burla has it."""
    try:
        body = response.json()
        body = body.get("detail", body)
        name, message = body["error"], body["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return BurlaError(
            f"the cluster answered {request} with {response.status_code}: {response.text[:500]}"
        )
    error_type = getattr(errors, name, None)
    if not (isinstance(error_type, type) and issubclass(error_type, BurlaError)):
        error_type = InvalidRequestError if response.status_code < 500 else BurlaError
    error = error_type(message)
    if isinstance(error, PayloadTooLargeError) and isinstance(body.get("limit"), int):
        error.limit = body["limit"]
    return error


def decode_result(index: int, kind: str, payload: bytes) -> Any:
    """A result's value, or the exception that stands for it, raised."""
    if kind == "ok":
        return cloudpickle.loads(payload)
    if kind == "raised":
        error = cloudpickle.loads(payload)
        error.burla_input_index = index
        raise with_source_files(error)
    details = json.loads(payload)
    if kind == "raised_text":
        raise RemoteError(
            f"input {index} raised {details['type']}: {details['message']} (the exception "
            f"could not be pickled back; remote traceback below)\n{details['traceback']}",
            index,
            details["type"],
            details["traceback"],
        )
    raise _FAILURES[kind](details["message"], index)


def upload(url: str, payload: Payload, what: str) -> None:
    """Put an input where a signed URL says, pickling it on the way if it is a writer."""
    if isinstance(payload, bytes):
        put_signed(url, payload)
    elif url.startswith("file://"):
        with _signed_file(url) as file:
            payload(file)
            check_size(what, file.tell())
    else:
        buffer = io.BytesIO()
        payload(buffer)
        check_size(what, buffer.tell())
        put_signed(url, buffer.getvalue())


@contextlib.contextmanager
def _signed_file(url: str) -> Iterator[IO[bytes]]:
    """The file a local cluster's signed URL names, written whole or not at all."""
    path = url.removeprefix("file://").split("?", 1)[0]
    temporary = f"{path}.upload"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(temporary, "wb") as file:
            yield file
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackendError(
                f"the disk that holds the cluster's blob store ({os.path.dirname(path)}) is "
                f"full ({error.strerror}); free space there (old jobs' inputs are in it), or "
                "pass paths instead of big inputs and read them inside the function"
            ) from error
        raise
    os.replace(temporary, path)


def put_signed(url: str, data: bytes) -> None:
    """Upload to a signed URL: over HTTP, or straight into a local cluster's directory."""
    if url.startswith("file://"):
        with _signed_file(url) as file:
            file.write(data)
        return
    import httpx  # only clusters with remote blob stores need it

    httpx.put(url, content=data, timeout=600).raise_for_status()
