"""The per-input timeout rule: which workers a node stops, given what it saw and when."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from burla.core.timeouts import LOOK_EVERY_S, StopWorker, WorkerLook, look_every_s, overdue

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
limits = st.floats(min_value=0.001, max_value=3600, allow_nan=False)
looks = st.lists(
    st.builds(
        WorkerLook,
        st.sampled_from(["w-0", "w-1", "w-2", "w-3"]),
        st.none() | st.integers(0, 100),
        times,
        st.booleans(),
    ),
    max_size=6,
    unique_by=lambda look: look.worker,
)


def test_a_worker_past_the_limit_is_stopped_and_told_why() -> None:
    seen = [
        WorkerLook("w-0", 3, started_at=100.0, holds_inputs=True),
        WorkerLook("w-1", 4, started_at=105.0, holds_inputs=True),
    ]
    assert overdue(seen, now=111.0, timeout_s=10.0) == [StopWorker("w-0", 3, 11.0)]


def test_exactly_at_the_limit_is_not_past_it() -> None:
    seen = [WorkerLook("w-0", 3, started_at=100.0, holds_inputs=True)]
    assert overdue(seen, now=110.0, timeout_s=10.0) == []


def test_a_worker_running_nothing_or_holding_nothing_is_left_be() -> None:
    seen = [
        WorkerLook("w-0", None, started_at=0.0, holds_inputs=True),
        WorkerLook("w-1", 7, started_at=0.0, holds_inputs=False),
    ]
    assert overdue(seen, now=1e6, timeout_s=1.0) == []


def test_short_timeouts_are_looked_at_four_times_per_timeout() -> None:
    assert look_every_s(0.1) == 0.025
    assert look_every_s(600.0) == LOOK_EVERY_S


@given(looks, times, limits)
def test_exactly_the_overdue_workers_are_stopped_once_each(
    seen: list[WorkerLook], now: float, limit: float
) -> None:
    stops = overdue(seen, now, limit)
    stopped = {stop.worker: stop for stop in stops}
    assert len(stopped) == len(stops)
    for look in seen:
        due = look.running is not None and look.holds_inputs and now - look.started_at > limit
        assert (look.worker in stopped) == due
        if due:
            assert stopped[look.worker] == StopWorker(
                look.worker, look.running, now - look.started_at
            )
            assert stopped[look.worker].ran_s > limit


@given(looks, times, st.floats(min_value=0, max_value=1e3, allow_nan=False), limits)
def test_a_worker_overdue_now_is_overdue_later(
    seen: list[WorkerLook], now: float, later_by: float, limit: float
) -> None:
    now_stopped = {stop.worker for stop in overdue(seen, now, limit)}
    later_stopped = {stop.worker for stop in overdue(seen, now + later_by, limit)}
    assert now_stopped <= later_stopped


@given(looks, times, limits, limits)
def test_a_longer_timeout_stops_no_worker_a_shorter_one_spares(
    seen: list[WorkerLook], now: float, first: float, second: float
) -> None:
    short, long = sorted((first, second))
    assert {s.worker for s in overdue(seen, now, long)} <= {
        s.worker for s in overdue(seen, now, short)
    }
