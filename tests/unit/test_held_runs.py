"""A node acks a run it claimed only when every input of it succeeded there."""

from __future__ import annotations

from burla.services.node_service.held_runs import HeldRuns


def test_a_run_whose_inputs_all_succeeded_is_the_nodes_to_ack_at_its_last() -> None:
    runs = HeldRuns()
    runs.add("run-a", 3)
    assert runs.ended("run-a", 2) is False
    assert runs.holds("run-a")
    assert runs.ended("run-a") is True
    assert not runs.holds("run-a")


def test_a_run_with_an_input_let_go_is_left_to_main_service() -> None:
    """Its ack would take the input out of the queue before anything durable said what
    became of it: main_service acks it once it settled the input."""
    runs = HeldRuns()
    runs.add("run-a", 3)
    runs.add("run-b", 2)
    runs.let_go("run-a")
    assert runs.ended("run-a") is False
    assert runs.ended("run-a") is False  # its last input: the run is forgotten, not acked
    assert not runs.holds("run-a")
    assert runs.ended("run-b", 2) is True  # the other run is unaffected


def test_a_run_whose_last_input_is_let_go_is_forgotten_unacked() -> None:
    runs = HeldRuns()
    runs.add("run-a", 2)
    assert runs.ended("run-a") is False
    runs.let_go("run-a")
    assert not runs.holds("run-a")
    runs.add("run-a", 1)  # a receipt is never reused; a new run starts clean all the same
    assert runs.ended("run-a") is True


def test_an_input_let_go_of_no_run_changes_nothing() -> None:
    runs = HeldRuns()
    runs.let_go("one-input")
    assert not runs.holds("one-input")
    assert runs.ended("one-input") is False
