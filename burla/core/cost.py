"""What a job costs: the time it holds its nodes, at each node's price per hour; and what
it would cost, worked out before it runs.

A node's time counts for a job from the moment the cluster gives the node the job to
the moment it takes the node back (the job ended, the node had nothing left to do for
it, or the node was lost). Booting, and idle standby nodes, are the cluster's cost, not
a job's. A node type's own `price_per_hour` is its price when set; otherwise its list
price, which the cluster's backend knows (Compute Engine's for a cloud cluster; none on
this machine's cluster, where a job costs nothing).

Before a job runs its cost is known only from the caller's estimate of one input's run
time (`seconds_per_input`): the job's inputs take at least that many seconds each on a
node that runs at most `per_node` of them at once, so it holds nodes for at least
n_inputs x seconds_per_input / per_node node-seconds, whatever the cluster does. Without
an estimate nothing bounds the cost from below: such a job is let run and stopped when
its cost reaches max_cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from burla.core.errors import EstimateOverBudgetError, InvalidRequestError
from burla.core.models import JobSpec, NodeType
from burla.core.scheduling import slots_on

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class NodePrice:
    """What one node costs per hour in USD, and where the figure comes from (or, with
    `usd_per_hour` None, why there is none)."""

    usd_per_hour: float | None
    source: str


THIS_MACHINE = NodePrice(0.0, "this machine's cluster: no price, jobs cost nothing")
"""The price of a node of a cluster that runs on the caller's own machine."""

ListPrice = Callable[[NodeType], NodePrice]
"""A backend's price of a node type (Compute Engine's list price of its machine type,
on-demand or spot as the node type is, say)."""


def this_machine(node_type: NodeType) -> NodePrice:
    """The list price of every node of this machine's cluster: none, it costs nothing."""
    return THIS_MACHINE


def price_of(node_type: NodeType, list_price: ListPrice) -> NodePrice:
    """A node type's price: its own `price_per_hour` when set, else its list price."""
    if node_type.price_per_hour is not None:
        return NodePrice(node_type.price_per_hour, f"price_per_hour of node type {node_type.name}")
    return list_price(node_type)


def usd_for(node_seconds: float, usd_per_hour: float) -> float:
    return node_seconds * usd_per_hour / SECONDS_PER_HOUR


def usd_text(usd: float | None) -> str:
    """An amount as people read it: "$0.0123", "$1,234.5000"; "no price" for None."""
    return "no price" if usd is None else f"${usd:,.4f}"


class NodeTime:
    """The node time one job holds: each node from when it joined the job to when it
    left, at its price per hour. Time already held (a job taken over from its record)
    can be given to start from."""

    def __init__(
        self, node_seconds: float = 0.0, usd: float | None = 0.0, sources: Iterable[str] = ()
    ) -> None:
        self._past_s = node_seconds
        self._past_usd = 0.0 if usd is None else usd
        self._unpriced = usd is None
        """Some of its node time had no price: its cost is not known."""
        self._held: dict[str, tuple[float, float | None]] = {}
        """Nodes it holds now: when each joined, and its price per hour (None: none)."""
        self.sources = set(sources)
        """Where the prices of its nodes came from (NodePrice.source)."""
        self.ended = False

    def join(self, node_id: str, at: float, price: NodePrice) -> None:
        """The node joins the job at `at`; a node it holds already, or a job that ended,
        is left as it is."""
        if not self.ended and node_id not in self._held:
            self._held[node_id] = (at, price.usd_per_hour)
            self.sources.add(price.source)

    def leave(self, node_id: str, at: float) -> None:
        """The node leaves the job at `at` (one it does not hold: nothing happens)."""
        joined = self._held.pop(node_id, None)
        if joined is None:
            return
        since, usd_per_hour = joined
        seconds = max(0.0, at - since)
        self._past_s += seconds
        if usd_per_hour is None:
            self._unpriced = True
        else:
            self._past_usd += usd_for(seconds, usd_per_hour)

    def end(self, at: float) -> None:
        """The job ended at `at`: every node leaves it, and none joins any more."""
        for node_id in list(self._held):
            self.leave(node_id, at)
        self.ended = True

    @property
    def holding(self) -> int:
        return len(self._held)

    def node_seconds(self, now: float) -> float:
        return self._past_s + sum(max(0.0, now - since) for since, _ in self._held.values())

    def priced_usd(self, now: float) -> float:
        """What the node time that has a price has cost up to `now`."""
        held = sum(
            usd_for(max(0.0, now - since), usd_per_hour)
            for since, usd_per_hour in self._held.values()
            if usd_per_hour is not None
        )
        return self._past_usd + held

    def usd(self, now: float) -> float | None:
        """The cost up to `now`; None when some of the time had no price."""
        if self._unpriced or any(price is None for _, price in self._held.values()):
            return None
        return self.priced_usd(now)

    def usd_per_hour(self) -> float:
        """What the nodes it holds now cost together per hour (those with a price)."""
        return sum(price for _, price in self._held.values() if price is not None)

    def seconds_until(self, usd: float, now: float) -> float | None:
        """How long from `now` until its cost reaches `usd` at the nodes it holds now
        (0 if it has); None if they cost nothing, so that it never does."""
        left = usd - self.priced_usd(now)
        if left <= 0:
            return 0.0
        rate = self.usd_per_hour()
        return None if rate <= 0 else left / rate * SECONDS_PER_HOUR


@dataclass(frozen=True)
class CostEstimate:
    """What a job would cost if each input ran `seconds_per_input`, on `nodes` nodes of
    one type, each running up to `per_node` inputs at once."""

    n_inputs: int
    seconds_per_input: float
    nodes: int
    per_node: int
    seconds: float
    """How long the job runs: its inputs in waves of as many as run at once."""
    node_seconds: float
    """Its nodes' time for all of `seconds` (the last wave may leave some idle)."""
    least_node_seconds: float
    """The least node time it can take: every node busy with all it can run, throughout."""
    price: NodePrice

    @property
    def usd(self) -> float | None:
        return self._priced(self.node_seconds)

    @property
    def least_usd(self) -> float | None:
        return self._priced(self.least_node_seconds)

    def _priced(self, node_seconds: float) -> float | None:
        price = self.price.usd_per_hour
        return None if price is None else usd_for(node_seconds, price)


def per_node(job: JobSpec, node_type: NodeType) -> int:
    """How many of the job's inputs one node of the type runs at once, at most."""
    return max(1, min(slots_on(node_type, job), job.parallelism))


def least_node_seconds(job: JobSpec, node_type: NodeType, seconds_per_input: float) -> float:
    """The node time the job takes at least if each input runs `seconds_per_input`."""
    return job.n_inputs * seconds_per_input / per_node(job, node_type)


def estimate(
    job: JobSpec, node_type: NodeType, nodes: int, seconds_per_input: float, price: NodePrice
) -> CostEstimate:
    """The cost of the job on `nodes` nodes of `node_type` (as the scheduler plans it),
    if each input runs `seconds_per_input`."""
    each = per_node(job, node_type)
    nodes = max(1, nodes) if job.n_inputs else 0
    at_once = min(job.parallelism, nodes * each)
    waves = math.ceil(job.n_inputs / at_once) if at_once else 0
    seconds = waves * seconds_per_input
    return CostEstimate(
        n_inputs=job.n_inputs,
        seconds_per_input=seconds_per_input,
        nodes=nodes,
        per_node=each,
        seconds=seconds,
        node_seconds=nodes * seconds,
        least_node_seconds=least_node_seconds(job, node_type, seconds_per_input),
        price=price,
    )


def check_budget(job: JobSpec, node_type: NodeType, price: NodePrice) -> None:
    """Refuse a job with a max_cost that cannot be kept to: its node type has no price
    (InvalidRequestError), or even its least node time costs more
    (EstimateOverBudgetError). Without seconds_per_input only the first can be known."""
    if job.max_cost is None:
        return
    if price.usd_per_hour is None:
        raise InvalidRequestError(
            f"max_cost=${job.max_cost:g} cannot be kept: node type {node_type.name} has no "
            f"price ({price.source}); give it a price_per_hour in the standby definition "
            "(`burla standby set`), or run without max_cost"
        )
    if job.seconds_per_input is None:
        return
    least = least_node_seconds(job, node_type, job.seconds_per_input)
    least_usd = usd_for(least, price.usd_per_hour)
    if least_usd > job.max_cost:
        each = per_node(job, node_type)
        raise EstimateOverBudgetError(
            f"this job would cost at least {usd_text(least_usd)}, over its "
            f"max_cost=${job.max_cost:g}: {job.n_inputs} inputs of {job.seconds_per_input:g} s "
            f"each, {each} at once per node, are {least / SECONDS_PER_HOUR:,.4g} node-hours "
            f"of {node_type.name} at {usd_text(price.usd_per_hour)} an hour ({price.source}); "
            "it is refused before anything runs: raise max_cost, run fewer inputs, or check "
            "seconds_per_input"
        )


@dataclass
class UserCost:
    """One user's jobs together: how many, their node-seconds, and what the priced ones
    cost (`unpriced`: jobs whose cost is not known, left out of `usd`)."""

    user: str
    jobs: int = 0
    node_seconds: float = 0.0
    usd: float = 0.0
    unpriced: int = 0

    def add(self, node_seconds: float, usd: float | None) -> None:
        self.jobs += 1
        self.node_seconds += node_seconds
        if usd is None:
            self.unpriced += 1
        else:
            self.usd += usd


def costs_by_user(jobs: Iterable[tuple[str, float, float | None]]) -> list[UserCost]:
    """Each user's total over `jobs` (owner, node-seconds, USD or None), by user name."""
    totals: dict[str, UserCost] = {}
    for user, node_seconds, usd in jobs:
        totals.setdefault(user, UserCost(user)).add(node_seconds, usd)
    return [totals[user] for user in sorted(totals)]
