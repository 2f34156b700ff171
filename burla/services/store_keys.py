"""Where the services keep things in the Store, and how a queue item holds its input."""

from __future__ import annotations

STANDBY_KEY = "cluster/standby"
"""The standby definition, as the seed keeps it: main_service writes it, nodes read it."""


LEASE_S = 60.0
"""How long a node holds a claimed input without renewing; renewed every third of it.
A node that stops puts the inputs it holds back at once, and main_service puts back those
of a node that dies (a node says which it holds within 0.2 s of claiming them); only
inputs claimed in the last moments of a node killed outright wait this long.
Every renewal is a Store write per input held: at 1,000 nodes of 96 CPUs, a 10 s lease
would be ~29,000 writes a second."""

JOBS_PREFIX = "jobs/"
RUNNING_PREFIX = "running/"
"""An empty document per running job: all a new main_service reads to find the jobs to
take over, however many finished ones the Store keeps."""


def job_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}"


def running_key(job_id: str) -> str:
    return f"{RUNNING_PREFIX}{job_id}"


def queue_name(job_id: str) -> str:
    """The queue of a job's inputs."""
    return f"inputs/{job_id}"


def results_prefix(job_id: str) -> str:
    return f"results/{job_id}/"


def inputs_prefix(job_id: str) -> str:
    """Where a job's inputs are kept, beside its results (see input_pages)."""
    return f"inputs/{job_id}/"


INLINE = b"\x00"
"""A queue item starting with this byte holds its input's pickled arguments."""
IN_BLOB = b"\x01"
"""A queue item starting with this byte holds the blob key of a big input."""
RUN = b"\x02"
"""A queue item starting with this byte refers to inputs kept in the job's input pages:
`<first index>:<count>` (see input_pages)."""
RUN_PREFIX = "r"
"""The id of a queue item that holds a run of inputs starts with this: any other item,
one input of a run included, is for one input and is settled as such."""
