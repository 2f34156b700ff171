"""What jobs cost: node time at a price, estimates before a job runs, refusals of a
max_cost that cannot be kept, and each user's total."""

from __future__ import annotations

import math

import pytest
from hypothesis import given

from burla.core.cost import (
    THIS_MACHINE,
    NodePrice,
    NodeTime,
    costs_by_user,
    estimate,
    price_of,
    this_machine,
    usd_text,
)
from burla.core.cost import check_budget as check
from burla.core.errors import EstimateOverBudgetError, InvalidRequestError
from burla.core.models import JobSpec, NodeType
from tests.strategies import NodeTimeStep, node_time_steps

N2_96 = NodeType(name="n2-standard-96", cpus=96, ram_gb=384)
DOLLAR = NodePrice(1.0, "a dollar an hour")


def listed(node_type: NodeType) -> NodePrice:
    return NodePrice(4.0, f"list price of {node_type.name}")


def test_a_node_types_own_price_comes_before_its_list_price():
    priced = N2_96.model_copy(update={"price_per_hour": 0.25})
    assert price_of(priced, listed) == NodePrice(0.25, "price_per_hour of node type n2-standard-96")
    assert price_of(N2_96, listed) == NodePrice(4.0, "list price of n2-standard-96")
    assert price_of(N2_96, this_machine) is THIS_MACHINE
    assert THIS_MACHINE.usd_per_hour == 0.0


def test_node_time_counts_each_node_from_join_to_leave_at_its_price():
    time = NodeTime()
    time.join("a", 10.0, NodePrice(3.6, "a"))
    time.join("b", 12.0, NodePrice(7.2, "b"))
    assert time.node_seconds(20.0) == 10.0 + 8.0
    time.leave("a", 20.0)
    assert time.holding == 1
    time.end(30.0)
    assert time.node_seconds(1000.0) == 10.0 + 18.0  # nothing counts after the end
    assert time.usd(1000.0) == pytest.approx(10 * 0.001 + 18 * 0.002)
    assert time.sources == {"a", "b"}


def test_joining_twice_leaving_a_stranger_and_joining_after_the_end_change_nothing():
    time = NodeTime()
    time.join("a", 0.0, DOLLAR)
    time.join("a", 50.0, DOLLAR)  # holds it already: still from 0
    time.leave("stranger", 60.0)
    time.end(100.0)
    time.join("b", 110.0, DOLLAR)
    assert time.node_seconds(200.0) == 100.0
    assert time.holding == 0


def test_time_without_a_price_has_no_cost_but_still_counts():
    time = NodeTime()
    time.join("a", 0.0, NodePrice(None, "no list price for z9-standard-4"))
    time.join("b", 0.0, NodePrice(36.0, "b"))
    assert time.usd(100.0) is None
    assert time.priced_usd(100.0) == pytest.approx(1.0)
    time.leave("a", 100.0)
    assert time.usd(100.0) is None, "the time it held the unpriced node stays unpriced"
    assert time.node_seconds(100.0) == 200.0


def test_a_local_node_costs_nothing_and_never_reaches_a_cap():
    time = NodeTime()
    time.join("local", 0.0, THIS_MACHINE)
    assert time.usd(3600.0) == 0.0
    assert time.node_seconds(3600.0) == 3600.0
    assert time.seconds_until(0.01, 3600.0) is None


def test_seconds_until_a_cap_at_the_nodes_held_now():
    time = NodeTime()
    time.join("a", 0.0, NodePrice(3.6, "a"))  # a tenth of a cent a second
    assert time.seconds_until(0.01, 0.0) == pytest.approx(10.0)
    time.join("b", 5.0, NodePrice(3.6, "b"))
    assert time.seconds_until(0.01, 5.0) == pytest.approx(2.5)
    assert time.seconds_until(0.01, 7.5) == pytest.approx(0.0, abs=1e-9)
    assert time.seconds_until(0.01, 9.0) == 0.0


def test_a_job_taken_over_goes_on_from_the_time_its_record_held():
    time = NodeTime(120.0, 0.5, ["from the record"])
    time.join("a", 0.0, NodePrice(36.0, "a"))
    assert time.node_seconds(10.0) == 130.0
    assert time.usd(10.0) == pytest.approx(0.6)
    assert NodeTime(5.0, None).usd(0.0) is None


@given(node_time_steps())
def test_node_time_adds_up_every_interval_a_node_was_held(steps: list[NodeTimeStep]):
    """Against a plain reference: each node's intervals, each at the price it joined at."""
    time, now = NodeTime(), 0.0
    held: dict[str, tuple[float, float | None]] = {}
    seconds, usd, unpriced = 0.0, 0.0, False
    for what, node, gap, price in steps:
        now += gap
        if what == "join":
            if node not in held:
                held[node] = (now, price)
            time.join(node, now, NodePrice(price, "drawn"))
        else:
            leaving = list(held) if what == "end" else [node] if node in held else []
            for gone in leaving:
                since, rate = held.pop(gone)
                seconds += now - since
                unpriced |= rate is None
                usd += 0.0 if rate is None else (now - since) * rate / 3600
            if what == "end":
                time.end(now)
            else:
                time.leave(node, now)
        open_s = sum(now - since for since, _ in held.values())
        assert math.isclose(time.node_seconds(now), seconds + open_s, rel_tol=1e-9, abs_tol=1e-6)
    assert time.node_seconds(now + 100) == pytest.approx(seconds, abs=1e-6)
    assert time.usd(now + 100) == (None if unpriced else pytest.approx(usd, abs=1e-9))
    assert time.holding == 0


def job(n_inputs: int, **fields: object) -> JobSpec:
    return JobSpec.model_validate({"job_id": "job-1", "n_inputs": n_inputs, **fields})


def test_the_seeds_job_on_its_eleven_nodes():
    """5 standby 96-CPU nodes join, 6 new ones reach the parallelism of 1,000: one wave."""
    found = estimate(job(1000), N2_96, 11, 60.0, DOLLAR)
    assert (found.nodes, found.per_node, found.seconds) == (11, 96, 60.0)
    assert found.node_seconds == 11 * 60.0
    assert found.least_node_seconds == pytest.approx(1000 * 60 / 96)
    assert found.usd == pytest.approx(11 / 60)
    assert found.least_usd == pytest.approx(1000 / 96 / 60)


def test_an_estimate_runs_inputs_in_waves_of_as_many_as_run_at_once():
    capped = estimate(job(100, max_parallelism=10), N2_96, 1, 30.0, DOLLAR)
    assert (capped.per_node, capped.seconds, capped.node_seconds) == (10, 300.0, 300.0)
    assert capped.least_node_seconds == 300.0
    assert estimate(job(0), N2_96, 0, 30.0, DOLLAR).node_seconds == 0.0
    assert estimate(job(5), N2_96, 1, 30.0, NodePrice(None, "none")).usd is None


def test_a_job_whose_least_cost_is_over_its_max_cost_is_refused_saying_why():
    over = job(960, max_cost=1.0, seconds_per_input=360.0)  # 1 node-hour at least
    with pytest.raises(EstimateOverBudgetError) as refused:
        check(over, N2_96, NodePrice(3.5, "n2 on-demand list price in us-central1"))
    message = str(refused.value)
    for said in ("at least $3.5000", "max_cost=$1", "960 inputs of 360 s", "96 at once", "1 node"):
        assert said in message
    assert "refused before anything runs" in message
    check(over, N2_96, NodePrice(0.5, "cheaper"))  # half a dollar: within


def test_without_seconds_per_input_only_a_missing_price_refuses():
    check(job(10**6, max_cost=0.01), N2_96, DOLLAR)
    check(job(10**6), N2_96, NodePrice(None, "none"))  # no cap: nothing to keep to
    with pytest.raises(InvalidRequestError, match=r"has no price \(no list price for z9\)"):
        check(job(1, max_cost=5.0), N2_96, NodePrice(None, "no list price for z9"))


def test_each_users_total():
    totals = costs_by_user(
        [("bob", 10.0, 0.5), ("alice", 3600.0, None), ("bob", 5.0, 0.25), ("alice", 1.0, 2.0)]
    )
    assert [(t.user, t.jobs, t.node_seconds, t.usd, t.unpriced) for t in totals] == [
        ("alice", 2, 3601.0, 2.0, 1),
        ("bob", 2, 15.0, 0.75, 0),
    ]


def test_amounts_read_as_dollars():
    assert usd_text(0.0123456) == "$0.0123"
    assert usd_text(1234.5) == "$1,234.5000"
    assert usd_text(None) == "no price"
