"""What people read of an input that failed without raising: its worker died, it ran out
of memory (core.memory), it ran past the job's timeout, its node was lost too often."""

from __future__ import annotations

from burla.core import inputs as i
from burla.core.inputs import Failure
from burla.core.memory import describe_gb
from burla.services.main_service.jobs import JobRun

FAILURE_TEXT = {
    Failure.WORKER_DIED: "the worker running it died (os._exit, a crash, or out of memory)",
    Failure.OUT_OF_MEMORY: (
        "the worker running it went over func_ram={func_ram:g} GB and was stopped (out of "
        "memory); ask for more with func_ram=, or make the function use less memory"
    ),
    Failure.TIMED_OUT: "it ran past the job's timeout",
    Failure.LOST: "its node was lost too many times",
}
GREW_TEXT = (
    "the worker running it went over its memory and was stopped (out of memory) each "
    "time, with {tried} (func_ram={func_ram:g} GB, doubled for each retry); ask for more "
    "with func_ram=, or make the function use less memory"
)
WHOLE_NODE_TEXT = (
    "the worker running it went over its memory and was stopped (out of memory) with "
    "{tried}, the last time with its node's whole memory ({node_gb:g} GB): it needs more "
    "memory than a node has; use a node type with more memory, or make the function use "
    "less"
)
RAN_OUT_TEXT = (
    "went over {memory:g} GB of memory and was stopped (out of memory); it runs again "
    "with {grown:g} GB"
)
"""What people read of an input that ran out of memory (core.memory)."""


def failure_text(run: JobRun, failed: i.RecordFailure) -> str:
    """Why an input failed without raising, for people and its caller's error."""
    func_ram = run.spec.func_ram
    tried = describe_gb(failed.ran_out)
    if failed.failure is Failure.OUT_OF_MEMORY and failed.node_gb is not None:
        return WHOLE_NODE_TEXT.format(tried=tried, node_gb=failed.node_gb)
    if failed.failure is Failure.OUT_OF_MEMORY and any(gb != func_ram for gb in failed.ran_out):
        return GREW_TEXT.format(tried=tried, func_ram=func_ram)
    return FAILURE_TEXT[failed.failure].format(func_ram=func_ram)


def ran_out_text(memory_gb: float, grown_gb: float) -> str:
    """The line an input that ran out of memory leaves, as it runs again with more."""
    return RAN_OUT_TEXT.format(memory=memory_gb, grown=grown_gb)
