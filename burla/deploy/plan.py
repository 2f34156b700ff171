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

    def check(self) -> Check: ...

    def apply(self, check: Check) -> None:
        """Make the resource as wanted, given what `check` found."""
        ...


@dataclass(frozen=True)
class Planned:
    step: Step
    check: Check

    def line(self) -> str:
        verb = _VERBS[self.check.state]
        detail = f" ({self.check.detail})" if self.check.detail else ""
        return f"  {_MARKS[self.check.state]} {self.step.kind:<18} {self.step.name}: {verb}{detail}"


def make_plan(steps: Sequence[Step]) -> list[Planned]:
    return [Planned(step, step.check()) for step in steps]


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
