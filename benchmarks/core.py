"""How fast the pure core decides, at cloud scale: `python -m benchmarks.core [OUT.json]`.

Measures planning a 100,000-input job on a 1,000-node cluster, the seed's story through
the cluster state machine, and input events per second through the input state machine.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from burla.core.clock import ManualClock
from burla.core.cluster import ClusterMachine, JobSubmitted, NodeBooted, RestartCluster, StartNode
from burla.core.inputs import InputMachine, InputsClaimed, InputsSucceeded
from burla.core.models import (
    ClusterConfig,
    JobSpec,
    Node,
    NodeState,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.scheduling import plan_job

N96 = NodeType(name="n2-standard-96", cpus=96, ram_gb=384)


def timed(run: Callable[[], object], repeat: int = 5) -> dict[str, float]:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def plan_at_scale() -> None:
    config = ClusterConfig(
        standby=StandbyDefinition(nodes=(StandbyGroup(node_type=N96, count=1000),))
    )
    nodes = [Node(node_id=f"n{i}", node_type=N96, state=NodeState.READY) for i in range(1000)]
    plan_job(config, nodes, JobSpec(job_id="j", n_inputs=100_000))


def seed_story(validate: bool) -> Callable[[], None]:
    def run() -> None:
        config = ClusterConfig(
            standby=StandbyDefinition(nodes=(StandbyGroup(node_type=N96, count=5),))
        )
        machine = ClusterMachine(config, ManualClock(), validate=validate)
        for command in machine.handle(RestartCluster()):
            assert isinstance(command, StartNode)
            machine.handle(NodeBooted(command.node_id))
        for command in machine.handle(JobSubmitted(JobSpec(job_id="j", n_inputs=1000))):
            if isinstance(command, StartNode):
                machine.handle(NodeBooted(command.node_id))

    return run


def input_events(n_inputs: int, validate: bool) -> Callable[[], None]:
    def run() -> None:
        machine = InputMachine(n_inputs, validate=validate)
        for start in range(0, n_inputs, 100):
            batch = tuple(range(start, min(start + 100, n_inputs)))
            machine.handle(InputsClaimed("w", "node", batch))
            for index in batch:
                machine.handle(InputsSucceeded("w", (index,)))

    return run


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/core.json")
    results = {
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "plan_100k_inputs_1000_nodes": timed(plan_at_scale),
        "seed_story_validated": timed(seed_story(validate=True)),
        "input_machine_10k_inputs_unvalidated": timed(input_events(10_000, validate=False)),
        "input_machine_1k_inputs_validated": timed(input_events(1_000, validate=True)),
    }
    events = 10_000 * 2 + 100
    results["input_events_per_s"] = (
        events / results["input_machine_10k_inputs_unvalidated"]["median_s"]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
