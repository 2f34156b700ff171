"""A job as it arrives: checked, named, and given its image and packages.

Everything that can refuse a job does so here, before anything is written: a bad or
taken id, blobs that are not the caller's, a spec that disagrees with its inputs, an
image or Dockerfile the cluster cannot run, a Python version the image lacks, packages
that will not install, a max_cost its estimate is over (burla.core.cost). What passes
becomes a JobRun, handed to the JobDriver.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from burla.core.clock import Clock
from burla.core.cost import NodePrice, check_budget
from burla.core.errors import ConflictError, InvalidRequestError
from burla.core.inputs import InputMachine
from burla.core.models import JobSpec, NodeType
from burla.core.protocols import Store
from burla.core.scheduling import node_type_for
from burla.services.main_service.job_driver import JobDriver
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.packages import PackageBuilder
from burla.services.main_service.resumes import Resumption, resumption
from burla.services.main_service.standby import Standby
from burla.services.main_service.users import ADMIN
from burla.services.store_keys import job_key

JOB_ID = re.compile(r"[a-z0-9-]{8,64}")
PREPARED = ("dockerfile", "build_context", "sources")
"""What a job brings to be made before it runs, which its spec does not keep."""
UPLOADS = "uploads/"


def upload_prefix(owner: str, job_id: str | None = None) -> str:
    """Where a job's function and big inputs are uploaded (signed URLs are made for keys
    under it only, and a job may refer to no other blob); without a job, the user's
    uploads for no job in particular (source archives)."""
    return f"{UPLOADS}{owner}/{job_id}/" if job_id else f"{UPLOADS}{owner}/"


class Submissions:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        standby: Standby,
        packages: PackageBuilder,
        jobs: JobDriver,
        *,
        validate: bool,
        price: Callable[[NodeType], NodePrice],
    ) -> None:
        """`price` is what a node of a type costs per hour: a job's max_cost is checked
        against it."""
        self.store = store
        self.clock = clock
        self.standby = standby
        self.packages = packages
        self.jobs = jobs
        self.validate = validate
        self.price = price
        self._preparing: set[str] = set()
        """Jobs whose image or packages are being made, not yet running."""

    async def submit(
        self,
        spec: dict[str, Any],
        function: bytes | None,
        function_key: str | None,
        items: list[tuple[str, bytes]],
        job_id: str | None = None,
        uploads: Sequence[str] = (),
        owner: str = ADMIN,
        digests: Mapping[int, bytes] | None = None,
    ) -> str:
        """Check and start a job; its id. A client may name it (so that it can cancel a
        job whose submission it never saw answered); the name must be new. `uploads` are
        the blobs the client put through signed URLs for it (the function, big inputs):
        they go when it ends. `digests` are those of its big inputs' bytes (kept with
        them; see input_pages). A job that resumes another is checked against it here."""
        sources, recipe, context_key = _brought(spec)
        await self.jobs.taken_over.wait()  # main_service is starting: jobs left running first
        job_id = await self._new_id(job_id)
        context = [context_key] if context_key is not None else []
        blobs = _owned_blobs(owner, job_id, [*uploads, *context], sources)
        fields = {key: value for key, value in spec.items() if key not in PREPARED}
        job = JobSpec.model_validate({**fields, "job_id": job_id})
        if job.n_inputs != len(items):
            raise InvalidRequestError(
                f"the job says it has {job.n_inputs} inputs but {len(items)} came; send them all"
            )
        if function is None and function_key is None:
            raise InvalidRequestError("a job needs a function: send it inline or upload it first")
        resumed = None
        if job.resumes is not None:
            resumed = await resumption(
                self.store, self.jobs.blobs, self.jobs.jobs, job, owner, items, digests or {}
            )
        self._check_budget(job, resumed)
        # Images are made and packages installed before the job exists: what cannot be
        # fails the call. Meanwhile a resent request for the same job is refused.
        self._preparing.add(job_id)
        try:
            job, package_keys = await self._prepare(job, recipe, context_key, sources)
        finally:
            self._preparing.discard(job_id)
        machine = InputMachine(
            job.n_inputs, retries=job.retries, grow_memory=job.grow_memory, validate=self.validate
        )
        run = JobRun(
            job,
            function,
            function_key,
            machine,
            owner,
            blob_prefixes={key.rsplit("/", 1)[0] + "/" for key in blobs},
            package_keys=package_keys,
            submitted_at=self.clock.now(),
        )
        await self.jobs.start(run, items, digests, resumed)
        return job_id

    def _check_budget(self, job: JobSpec, resumed: Resumption | None = None) -> None:
        """Refuse a job whose max_cost its estimate is over, before an image is built or
        a package installed (the node type it runs on does not depend on its image). A
        job that resumes another is estimated by the inputs it runs."""
        if resumed is not None:
            job = job.model_copy(update={"n_inputs": resumed.plan.to_run})
        if job.max_cost is not None:
            node_type = node_type_for(
                self.standby.machine.config, job.model_copy(update={"image": None})
            )
            check_budget(job, node_type, self.price(node_type))

    async def _new_id(self, job_id: str | None) -> str:
        """The caller's id for its job (so that it can cancel a job whose submission it
        never saw answered), which must be new; or one made here."""
        if job_id is None:
            return f"job-{self.clock.now():.0f}-{secrets.token_hex(4)}"
        if not JOB_ID.fullmatch(job_id):
            raise InvalidRequestError(
                f"job id {job_id!r} is not 8-64 of a-z, 0-9 and '-'; let the cluster name it"
            )
        taken = job_id in self.jobs.jobs or job_id in self._preparing
        if taken or await self.store.get(job_key(job_id)) is not None:
            raise ConflictError(f"there is a job {job_id} already; use a new id")
        return job_id

    async def _prepare(
        self,
        job: JobSpec,
        recipe: str | None,
        context_key: str | None,
        sources: dict[str, str],
    ) -> tuple[JobSpec, tuple[str, ...]]:
        """The job on its image, made and started if new, and the archives of its
        packages, installed if new."""
        if recipe is not None:
            context = None if context_key is None else await self.jobs.blobs.get(context_key)
            made = await self.standby.image_from(recipe, context)
            job = job.model_copy(update={"image": made})
        if job.image is not None and self.standby.images is not None:
            await self.standby.add(job.image)
        image = self.standby.image_for(job)
        job = job.model_copy(update={"image": image})
        # Refuse what no node can run, before anything is written.
        node_type_for(self.standby.machine.config, job)
        python = self.standby.python_of(image)
        if job.python_version is not None and job.python_version != python:
            raise InvalidRequestError(
                f"this job comes from Python {job.python_version} but the workers of its "
                f"image run Python {python}, where its pickled function cannot load; call "
                f"from Python {python}, or use an image with Python {job.python_version}"
            )
        if not job.packages:
            return job, ()
        return job, await self.packages.ensure(job.packages, python, sources)


def _brought(spec: dict[str, Any]) -> tuple[dict[str, str], str | None, str | None]:
    """What a job brings to be made before it runs: its source archives' keys by
    requirement, its Dockerfile and the key of its build context."""
    sources: dict[str, str] = spec.get("sources") or {}
    recipe: str | None = spec.get("dockerfile")
    context_key: str | None = spec.get("build_context")
    if (
        not isinstance(sources, dict)
        or not all(isinstance(key, str) for key in sources.values())
        or not isinstance(recipe, str | None)
        or not isinstance(context_key, str | None)
    ):
        raise InvalidRequestError(
            "a job's sources map requirements to uploaded keys, its dockerfile is text "
            "and its build context an uploaded key"
        )
    if context_key is not None and recipe is None:
        raise InvalidRequestError("a build context is for a dockerfile; send both")
    return sources, recipe, context_key


def _owned_blobs(
    owner: str, job_id: str, uploads: Sequence[str], sources: dict[str, str]
) -> list[str]:
    """The blobs a job refers to, each of which must be the owner's: uploaded for this
    job, or (source archives, uploaded once per cluster) for none in particular."""
    own = upload_prefix(owner, job_id)
    outside = [key for key in uploads if not key.startswith(own)]
    outside += [key for key in sources.values() if not key.startswith(upload_prefix(owner))]
    if outside:
        raise InvalidRequestError(
            f"a job may refer only to blobs uploaded for it (under {own}), "
            f"not {outside[0]!r}; ask POST /uploads for this job's URLs"
        )
    return [*uploads, *sources.values()]
