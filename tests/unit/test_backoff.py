import random

import pytest

from burla.core.backoff import Backoff
from burla.core.clock import ManualClock


def test_pauses_double_up_to_the_most() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.pause() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.failures == 5


def test_reset_starts_from_the_first_pause() -> None:
    backoff = Backoff(0.1, 10.0)
    backoff.pause(), backoff.pause()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.pause() == 0.1


def test_full_jitter_draws_between_zero_and_the_pause() -> None:
    backoff = Backoff(1.0, 1.0, jitter=1.0, rng=random.Random(7))
    drawn = [backoff.pause() for _ in range(200)]
    assert all(0.0 <= p <= 1.0 for p in drawn)
    assert min(drawn) < 0.1  # spread, not the pause itself


def test_half_jitter_keeps_at_least_half() -> None:
    backoff = Backoff(2.0, 2.0, jitter=0.5, rng=random.Random(3))
    drawn = [backoff.pause() for _ in range(200)]
    assert all(1.0 <= p <= 2.0 for p in drawn)
    assert len(set(drawn)) > 100


def test_gives_up_when_the_next_pause_would_pass_the_deadline() -> None:
    clock = ManualClock()
    backoff = Backoff(1.0, 4.0, clock=clock.now, give_up_after_s=5.0)
    assert not backoff.exhausted
    assert backoff.pause() == 1.0
    clock.advance(1.0)
    assert not backoff.exhausted
    assert backoff.pause() == 2.0
    clock.advance(2.0)
    assert backoff.elapsed_s == 3.0
    assert backoff.exhausted  # 3 s gone + a 4 s pause > 5 s
    assert backoff.failures == 2


def test_refuses_settings_that_make_no_sense() -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="first_s"):
        Backoff(2.0, 1.0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1.0, 1.0, jitter=1.5)
    with pytest.raises(ValueError, match="clock"):
        Backoff(1.0, 1.0, give_up_after_s=3.0)
