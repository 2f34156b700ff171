"""Scenarios as data: the cluster, the workload and the faults of one simulation.

A scenario is a YAML or JSON file validated by these models. Durations that vary are
drawn from a seeded random generator, so a scenario and its seed fix the whole run.
burla ships a few under burla/sim/scenarios/; `burla sim NAME` runs one of them and
`burla sim path/to/file.yaml` runs yours.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from burla.core.errors import InvalidRequestError, NotFoundError
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)

SHIPPED_DIR = Path(__file__).parent / "scenarios"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Seconds(_Model):
    """A duration drawn anew each time: uniform from `low` to `high`, or lognormal with
    median `low` and spread `sigma` (then `high` caps it). A plain number is fixed."""

    low: float = Field(ge=0)
    high: float = Field(ge=0)
    dist: Literal["uniform", "lognormal"] = "uniform"
    sigma: float = Field(default=1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _plain_number(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            return {"low": value, "high": value}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Seconds:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self

    def draw(self, rng: random.Random) -> float:
        if self.dist == "lognormal":
            return min(self.high, rng.lognormvariate(0.0, self.sigma) * self.low)
        return self.low if self.high == self.low else rng.uniform(self.low, self.high)


class SimNodeType(_Model):
    """A machine type and how its machines boot (create to node_service up, in seconds)."""

    name: str = Field(min_length=1)
    cpus: int = Field(gt=0)
    ram_gb: float = Field(gt=0)
    gpus: int = Field(default=0, ge=0)
    boot_s: Seconds = Seconds(low=60, high=120)
    boot_failure_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of machines that never come up (they show as failed at the end of boot)."""
    price_per_hour: float | None = Field(default=None, ge=0)
    """USD per hour of one machine; by default the Compute Engine list price of `name`
    in the scenario's region, at spot rates for a spot type (none for a name that is no
    machine type)."""
    spot: bool = False
    """Spot VMs: priced at spot rates, and preempted at `preemptions_per_hour`."""
    preemptions_per_hour: float = Field(default=0.0, ge=0)
    """How often the cloud takes back one machine of this type that is up, on average
    (each machine's time to its preemption is drawn from an exponential distribution
    with this rate, from the scenario's seed): 0.5 preempts a machine about every two
    hours it is up. Only spot types are preempted."""

    @model_validator(mode="after")
    def _only_spot_is_preempted(self) -> SimNodeType:
        if self.preemptions_per_hour and not self.spot:
            raise ValueError(
                f"node type {self.name!r} has preemptions_per_hour but is not spot; "
                "set spot: true (only spot VMs are preempted)"
            )
        return self

    def node_type(self) -> NodeType:
        return NodeType(
            name=self.name,
            cpus=self.cpus,
            ram_gb=self.ram_gb,
            gpus=self.gpus,
            price_per_hour=self.price_per_hour,
            spot=self.spot,
        )


class SimImage(_Model):
    """A container image: how long its containers take to start on a node."""

    image: str = Field(min_length=1)
    start_s: Seconds = Seconds(low=1, high=3)
    """From `docker run` to the container's worker saying hello, on a node that has it."""
    pull_s: Seconds = Seconds(low=20, high=40)
    """Downloading it on a node that does not have it yet (a fresh machine)."""
    build_s: Seconds = Seconds(low=120, high=240)
    """Building it with burla's worker inside, the first time a job asks for it."""


class StandbyNodes(_Model):
    node_type: str
    count: int = Field(ge=0)


class RaisingInputs(_Model):
    """Inputs whose function raises (a ValueError, at the end of their run time): those
    named by index, and a `share` of the others drawn from the scenario's seed."""

    indices: tuple[int, ...] = ()
    share: float = Field(default=0.0, ge=0, le=1)

    def drawn(self, n_inputs: int, rng: random.Random) -> frozenset[int]:
        """The indices of a job of `n_inputs` that raise."""
        chosen = {index for index in self.indices if index < n_inputs}
        others = [index for index in range(n_inputs) if index not in chosen]
        return frozenset(chosen | set(rng.sample(others, round(self.share * len(others)))))


class ResumeCall(_Model):
    """The user comes back after the first call ended (its last result, the error that
    stopped it, or its client's death) and calls remote_parallel_map again with the same
    inputs and `resume=` the first job's id: only the inputs without a successful result
    run, the others' results are taken from the first job."""

    after_s: float = Field(default=60.0, ge=0)
    """How long after the first call ended the user resumes."""
    running: Literal["cancel", "wait"] = "cancel"
    """What the user does with the first job if it still runs then, as a crashed
    client's job does: cancel it (`burla jobs cancel`) and resume at once, or wait for
    its end (`burla jobs result`) and resume then."""
    fixed: bool = True
    """The function is fixed: inputs that raised in the first job succeed now."""
    failed_only: bool = False
    """Run only the first job's failed inputs, not those it never ran (`burla jobs
    rerun --failed-only`)."""
    return_exceptions: bool | None = None
    """The resumed call's return_exceptions (default: the first call's)."""


class JobArrival(_Model):
    """A job (one remote_parallel_map call), submitted by `users` users at once."""

    at_s: float = Field(default=0.0, ge=0)
    users: int = Field(default=1, ge=1)
    """How many users submit this same job; each submits their own copy."""
    spread_s: float = Field(default=0.0, ge=0)
    """The copies arrive at random moments within this many seconds after `at_s`."""
    n_inputs: int = Field(ge=0)
    func_cpu: int = Field(default=1, ge=1)
    func_ram: float = Field(default=1.0, gt=0)
    image: str | None = None
    max_parallelism: int | None = Field(default=None, ge=1)
    retries: int = Field(default=0, ge=0)
    run_s: Seconds = Seconds(low=1, high=1)
    """The cost model: each input's run time, drawn once per input."""
    result_bytes: int = Field(default=16, ge=0)
    function_loads: bool = True
    """False: the function fails to load on the workers (the job fails at once)."""
    blob_inputs: bool = False
    """The inputs go through the blob store, as inputs too big to send inline do: the
    user uploads them to signed URLs, nodes hand workers signed URLs to read them."""
    max_cost: float | None = Field(default=None, gt=0)
    """USD the job may cost (remote_parallel_map's max_cost): refused or stopped past it."""
    memory_gb: dict[int, float] = {}
    """The memory some inputs use, by index (GB): one that uses more than its worker is
    held to is stopped out of memory, at the end of its run time. The others use less
    than func_ram."""
    grow_memory: bool = True
    seconds_per_input: float | None = Field(default=None, gt=0)
    """The user's estimate of an input's run time, which max_cost is checked against."""
    raises: RaisingInputs = RaisingInputs()
    """Inputs whose function raises: they fail (after `retries` more tries, which raise
    too) with a ValueError."""
    return_exceptions: bool = True
    """remote_parallel_map's return_exceptions: True (the simulator's default, unlike
    the call's) keeps following the job past failed inputs to its end; False: at the
    first failed input the user's client cancels the job as failed (`POST
    /jobs/{id}/cancel?failed=true`) and stops, as the client does before it raises, so
    the inputs not done never run."""
    client_dies_s: float | None = Field(default=None, ge=0)
    """The user's process dies this many seconds after the job's arrival (a notebook
    that crashed): it follows the job no more and cancels nothing, and the job runs on
    to its end, as on a real cluster."""
    resume: ResumeCall | None = None
    """Once this call ended, the user resumes its job (`resume=`)."""


class Fault(_Model):
    """Something that breaks at `at_s`: machines die (`node_death`), containers die
    while running an input (`container_death`), or main_service dies and another takes
    over from the Store (`main_restart`) after `down_s`, deleting the machines it finds,
    as on a cloud cluster."""

    at_s: float = Field(ge=0)
    kind: Literal["node_death", "container_death", "main_restart"]
    down_s: float = Field(default=10.0, ge=0)
    count: int = Field(default=1, ge=1)
    node: str | None = None
    """The node to kill; by default `count` nodes running jobs, drawn at random."""


class ServiceCpuCharge(_Model):
    """The services' own CPU: measured around each of their task steps and charged in
    virtual time, times `scale` (the reference machine's speed against this one's)."""

    measure: bool = False
    """Off by default: measured CPU differs from run to run, so runs are not repeatable."""
    scale: float = Field(default=1.0, ge=0)


class Scenario(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = 0
    node_types: tuple[SimNodeType, ...] = Field(min_length=1)
    region: str = "us-central1"
    """Where the machines are priced (Compute Engine list prices of burla's table)."""
    images: tuple[SimImage, ...] = Field(min_length=1)
    """Images the simulation knows; the first is the default environment."""
    standby: tuple[StandbyNodes, ...] = ()
    standby_images: tuple[str, ...] | None = None
    """Images every node keeps warm (default: the first image only)."""
    start_in_standby: bool = True
    """Time zero is when the standby set is up (booted before the clock starts)."""
    max_nodes: int | None = Field(default=None, ge=0)
    quota_cpus: int | None = Field(default=None, ge=0)
    """The cloud project's CPU quota: machines beyond it cannot be created."""
    release: Literal["delete", "recycle"] = "delete"
    refill_standby: bool = True
    jobs: tuple[JobArrival, ...] = ()
    faults: tuple[Fault, ...] = ()
    store_failures: float = Field(default=0.0, ge=0, lt=1)
    blob_failures: float = Field(default=0.0, ge=0, lt=1)
    """The share of the services' blob store calls that fail for a moment (they retry)."""
    store_profile: Literal["memory", "firestore", "firestore-warm", "redis", "sqlite"] = "memory"
    """The Store (and the blob store beside it) whose latency and limits the services
    meet (burla.sim.profiles); memory answers at once."""
    network: Literal["instant", "same-region"] = "instant"
    """Delays of the network when `link_delay_s` and `client_delay_s` are not given:
    none, or those of a cloud region (burla.sim.profiles.SAME_REGION; assumptions)."""
    link_delay_s: Seconds | None = None
    """How long frames between main_service and a node take on the way (each batch;
    in order): a slow network between them."""
    client_delay_s: Seconds | None = None
    """How long a user's request takes to reach main_service, and its answer to come
    back (drawn each way)."""
    service_cpu: ServiceCpuCharge = ServiceCpuCharge()
    lost_answers: float = Field(default=0.0, ge=0, lt=1)
    """The share of main_service's answers to users lost on the way, after the request
    was carried out: the user asks again, as the client does."""
    """The share of the services' Store calls that fail for a moment (they retry)."""
    client_pause_s: float = Field(default=0.5, ge=0)
    """How long a client takes with each answer before it asks for more results."""
    sample_s: float | None = Field(default=None, gt=0)
    """Timeline resolution (default: about 600 samples over the run)."""
    settle_s: float = Field(default=1800.0, gt=0)
    """How long after its last job the cluster may take to be in standby again."""
    max_virtual_s: float = Field(default=86_400.0, gt=0)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        types = {t.name for t in self.node_types}
        images = {i.image for i in self.images}
        if len(types) != len(self.node_types) or len(images) != len(self.images):
            raise ValueError("node type names and image names must each be unique")
        for group in self.standby:
            if group.node_type not in types:
                raise ValueError(f"standby names node type {group.node_type!r}, not in node_types")
        for image in [*(self.standby_images or ()), *(j.image for j in self.jobs if j.image)]:
            if image not in images:
                raise ValueError(f"image {image!r} is used but not listed under images")
        return self

    @property
    def kept_images(self) -> tuple[str, ...]:
        return self.standby_images or (self.images[0].image,)

    def image(self, name: str) -> SimImage:
        return next(i for i in self.images if i.image == name)

    def node_type(self, name: str) -> SimNodeType:
        return next(t for t in self.node_types if t.name == name)

    def cluster_config(self, images: tuple[str, ...] | None = None) -> ClusterConfig:
        """The cluster main_service runs, keeping `images` warm (default: kept_images)."""
        by_name = {t.name: t.node_type() for t in self.node_types}
        groups = tuple(
            StandbyGroup(node_type=by_name[g.node_type], count=g.count) for g in self.standby
        )
        return ClusterConfig(
            standby=StandbyDefinition(
                nodes=groups,
                containers=tuple(ContainerSpec(image=i) for i in images or self.kept_images),
            ),
            node_types=tuple(by_name.values()),
            max_nodes=self.max_nodes,
            release=self.release,
            refill_standby=self.refill_standby,
        )


def shipped() -> list[str]:
    """Names of the scenarios that come with burla."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def load(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file (.yaml, .yml or .json)."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SHIPPED_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise NotFoundError(
                f"there is no scenario {name_or_path!r}; shipped ones are "
                f"{', '.join(shipped())}, or give the path of a .yaml or .json file"
            )
    try:
        text = path.read_text()
    except OSError as error:
        raise NotFoundError(f"cannot read scenario file {str(path)!r}: {error}") from None
    return parse(text, json_text=path.suffix == ".json", source=str(path))


def parse(text: str, *, json_text: bool = False, source: str = "scenario") -> Scenario:
    import yaml  # type: ignore[import-untyped]  # no stubs installed; only safe_load is used

    try:
        data = json.loads(text) if json_text else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise InvalidRequestError(
            f"{source} is not valid {'JSON' if json_text else 'YAML'}: {error}"
        ) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise InvalidRequestError(f"{source} is not a valid scenario:\n{error}") from None
