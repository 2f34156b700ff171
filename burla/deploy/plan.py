"""A deploy's plan: each resource of the cluster, what exists of it, and what deploy will do.

Every resource is a Step: `check` reads what Google has and says whether it is as wanted,
missing or different; `apply` makes it so. Checking changes nothing, so a plan can be
shown (and `--dry-run` stop there), and applying only the steps that are not `ok` makes
deploy idempotent: a second run changes nothing, and a run cut short completes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

State = Literal["ok", "missing", "differs"]
_VERBS = {"ok": "exists", "missing": "create", "differs": "update"}
_MARKS = {"ok": "=", "missing": "+", "differs": "~"}


@dataclass(frozen=True)
class Check:
    state: State
    detail: str = ""
    """What exists or differs, e.g. "2 of 7 enabled" or "startup script differs"."""


class Step(Protocol):
    kind: str
    """What sort of resource, e.g. "service account"."""
    name: str

    @property
    def needs(self) -> tuple[str, ...]:
        """What must exist before this can be read: APIs (e.g. "firestore.googleapis.com")
        or the kinds of earlier steps."""
        ...

    @property
    def made(self) -> tuple[str, ...]:
        """What this step makes, for the `needs` of later ones: its kind (the APIs step:
        each API it enables)."""
        ...

    def check(self) -> Check: ...

    def apply(self, check: Check) -> None:
        """Make the resource as wanted, given what `check` found."""
        ...


class OneResource:
    """For a step that makes one resource: what it makes is its kind."""

    kind: str

    @property
    def made(self) -> tuple[str, ...]:
        return (self.kind,)


@dataclass(frozen=True)
class Planned:
    step: Step
    check: Check

    def line(self) -> str:
        verb = _VERBS[self.check.state]
        detail = f" ({self.check.detail})" if self.check.detail else ""
        return f"  {_MARKS[self.check.state]} {self.step.kind:<18} {self.step.name}: {verb}{detail}"


def make_plan(steps: Sequence[Step]) -> list[Planned]:
    """Check each step in order; one that needs what an earlier step will make is not
    read (Google would refuse: a disabled API, an account not made yet) but planned."""
    plan: list[Planned] = []
    coming: set[str] = set()
    for step in steps:
        waiting = [need for need in step.needs if need in coming]
        check = Check("missing", f"after {waiting[0]}") if waiting else step.check()
        if check.state == "missing":
            coming.update(step.made)
        plan.append(Planned(step, check))
    return plan


def carry_out(plan: Sequence[Planned], say: Callable[[str], None]) -> int:
    """Apply, in order, every step the plan found not as wanted; how many it changed."""
    changed = 0
    for planned in plan:
        if planned.check.state == "ok":
            continue
        say(f"{_VERBS[planned.check.state]} {planned.step.kind} {planned.step.name}")
        planned.step.apply(planned.check)
        changed += 1
    return changed
