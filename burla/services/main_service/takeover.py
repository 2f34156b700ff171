"""Jobs an earlier main_service of this cluster left running, taken over at start.

Every running job is listed in the Store (store_keys.RUNNING_PREFIX) while its record
says it runs. A new main_service goes on with each from its record: what the job
finished is in the Store, the rest is in its queue, held by nodes or waiting, or (a
small job's, services.handed_inputs) handed out to nodes, and queued again here.
"""

from __future__ import annotations

from burla.core.clock import Clock
from burla.core.errors import BurlaError
from burla.core.models import JobState
from burla.core.protocols import Store
from burla.services.main_service.job_driver import JobDriver
from burla.services.main_service.job_logs import JobLog
from burla.services.main_service.jobs import JobRun, run_from_record
from burla.services.main_service.kept_functions import read_function
from burla.services.main_service.standby import Standby
from burla.services.store_keys import RUNNING_PREFIX, job_key


async def take_over_jobs(
    store: Store, clock: Clock, jobs: JobDriver, standby: Standby, *, validate: bool
) -> None:
    await _take_over(store, clock, jobs, standby, validate=validate)
    jobs.taken_over.set()


async def _take_over(
    store: Store, clock: Clock, jobs: JobDriver, standby: Standby, *, validate: bool
) -> None:
    after = ""
    while listed := await store.list(RUNNING_PREFIX, after=after):
        after = listed[-1].key
        for entry in listed:
            doc = await store.get(job_key(entry.key.removeprefix(RUNNING_PREFIX)))
            if doc is None or doc.data.get("state") != JobState.RUNNING.value:
                await store.delete(entry.key)  # it ended as the last one stopped
                continue
            if "resume" not in doc.data:
                continue
            function = await read_function(store, doc.data["resume"])
            run = run_from_record(doc.data, function, clock, validate=validate)
            run.log = await JobLog.resume(store, run.spec.job_id)
            run.listed_running = True
            jobs.adopt(run)
            await jobs.catch_up.once(run)
            if not run.state.finished and await _restore_image(run, jobs, standby):
                await jobs.queue_unfinished(run)
                await jobs.nodes.job_started(run.spec)
                jobs.catch_up.keep_looking(run)


async def _restore_image(run: JobRun, jobs: JobDriver, standby: Standby) -> bool:
    """Put a job taken over back on its custom image, which this main_service's standby
    definition lacks; a job whose image cannot be had any more fails, saying why."""
    image = run.spec.image
    if image is None or standby.has(image):
        return True
    try:
        await standby.add(image)
    except BurlaError as error:
        await jobs.fail(run, f"its image {image!r} could not be started again: {error}")
        return False
    return True
