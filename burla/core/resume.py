"""Resuming a job: which inputs a new job takes from the job it resumes, and whether the
two jobs have the same inputs (by index, and by a digest of each input's pickled bytes).

A job that resumes another (its spec's `resumes`) is a new job with all of the old one's
inputs. Each input that succeeded in the old job keeps its result, copied into the new
job; the others run. With `failed_only`, inputs the old job never ran are skipped too:
only its failed inputs run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DIGEST_SIZE = 16


def input_digest(pickled: bytes) -> bytes:
    """The digest of an input's pickled arguments, as kept with the job."""
    return hashlib.blake2b(pickled, digest_size=DIGEST_SIZE).digest()


@dataclass(frozen=True)
class ResumePlan:
    """What a job that resumes another does with each of its inputs."""

    reused: tuple[int, ...]
    """Inputs that succeeded in the old job: their results are copied, they do not run."""
    skipped: tuple[int, ...]
    """Inputs that do not run and get no result (with `failed_only`: the old job never
    ran them)."""
    n_inputs: int

    @property
    def to_run(self) -> int:
        return self.n_inputs - len(self.reused) - len(self.skipped)


def plan_resume(n_inputs: int, succeeded: Mapping[int, bool], failed_only: bool) -> ResumePlan:
    """The plan for resuming a job of `n_inputs` whose results are `succeeded` (index ->
    whether that input's result is a success; inputs with no result are absent)."""
    reused = tuple(index for index in range(n_inputs) if succeeded.get(index) is True)
    skipped: tuple[int, ...] = ()
    if failed_only:
        skipped = tuple(index for index in range(n_inputs) if index not in succeeded)
    return ResumePlan(reused, skipped, n_inputs)


def input_mismatch(
    old_job: str, old: Sequence[bytes | None], new: Sequence[bytes | None]
) -> str | None:
    """Why a call's inputs (their digests, `new`) are not those of the job it resumes
    (`old`), or None when they are. A digest that is None is one that is not known."""
    again = (
        f"pass the inputs of job {old_job}, in the same order (the function may be another), "
        "or start a new job without resume="
    )
    if len(old) != len(new):
        return (
            f"job {old_job} has {len(old)} inputs and this call {len(new)}: a resumed job "
            f"runs the same inputs, matched by index; {again}"
        )
    for index, (before, now) in enumerate(zip(old, new, strict=True)):
        if before is None:
            return (
                f"input {index} of job {old_job} was kept without a digest of its bytes "
                f"(it was uploaded by an older burla), so it cannot be compared; start a "
                "new job without resume="
            )
        if before != now:
            return (
                f"input {index} is not input {index} of job {old_job} (its pickled bytes "
                f"differ; it is the first input that does); {again}"
            )
    return None


def ranges(indices: Iterable[int]) -> list[list[int]]:
    """Sorted indices as [first, last] runs, to keep a set of inputs small in a record."""
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return runs


def indices_in(runs: Iterable[Sequence[int]]) -> tuple[int, ...]:
    """The indices of [first, last] runs, in order."""
    return tuple(index for first, last in runs for index in range(first, last + 1))
