"""A job's request fits main_service's limit: the client moves its biggest parts to the blob
store until it does, or says why it cannot."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.client.fit import FUNCTION, INLINE_LIMIT, KEY_SIZE, fit
from burla.client.uploads import job_body
from burla.core import wire
from burla.core.errors import PayloadTooLargeError
from burla.core.limits import JOB_REQUEST_ENV, RequestLimits

HEAD = {"job_id": "job-0123456789abcdef", "spec": {"n_inputs": 1, "func_cpu": 1}}


def request_size(function_size: int, sizes: list[int | None], moved: set[int]) -> int:
    """The job's request as the client builds it, with keys as main_service makes them."""
    head = dict(HEAD)
    if FUNCTION in moved:
        head["function_key"] = "uploads/0123456789abcdef/99999"
    keys = {n: f"uploads/0123456789abcdef/{n}" for n in moved - {FUNCTION}}
    payloads = [b"x" * (size or 0) for size in sizes]
    function = b"" if FUNCTION in moved else b"f" * function_size
    return len(job_body(head, function, payloads, keys))


def head_size() -> int:
    return len(wire.encode(HEAD)) - wire.PREFIX_SIZE


def test_a_job_under_the_limit_moves_only_what_is_big():
    sizes: list[int | None] = [10, INLINE_LIMIT + 1, None, 500]
    assert fit(head_size(), 100, sizes, 10 << 20) == {1, 2}
    assert fit(head_size(), INLINE_LIMIT + 1, [10], 10 << 20) == {FUNCTION}


def test_the_biggest_inputs_move_until_the_request_fits():
    sizes: list[int | None] = [1000, 900_000, 5000, 800_000, 20]
    moved = fit(head_size(), 1000, sizes, 100_000)
    assert moved == {1, 3}
    assert request_size(1000, sizes, moved) <= 100_000


def test_a_job_of_too_many_inputs_says_how_to_split_it():
    with pytest.raises(PayloadTooLargeError, match=f"10000 inputs.*{JOB_REQUEST_ENV}.*several"):
        fit(head_size(), 100, [30] * 10_000, 100_000)


@given(
    function_size=st.integers(0, 2 * INLINE_LIMIT),
    sizes=st.lists(st.none() | st.integers(0, 3 * INLINE_LIMIT), max_size=30),
    limit=st.integers(100, 20 * INLINE_LIMIT),
)
def test_a_fitted_request_is_never_over_the_limit(function_size, sizes, limit):
    try:
        moved = fit(head_size(), function_size, sizes, limit)
    except PayloadTooLargeError:
        inputs = set(range(len(sizes)))
        smallest = min(
            request_size(function_size, sizes, inputs),
            request_size(function_size, sizes, {FUNCTION, *inputs}),
        )
        slack = KEY_SIZE * (len(sizes) + 1)  # the keys, which fit() only estimates
        assert smallest + slack > limit
        return
    assert request_size(function_size, sizes, moved) <= limit
    assert {n for n, size in enumerate(sizes) if size is None or size > INLINE_LIMIT} <= moved


def test_limits_come_from_the_environment_and_bad_values_are_refused():
    limits = RequestLimits.from_environ({JOB_REQUEST_ENV: "2", "BURLA_MAX_REQUEST_KB": "0.5"})
    assert (limits.job_request, limits.request) == (2 << 20, 512)
    assert RequestLimits.from_environ({}) == RequestLimits()
    with pytest.raises(PayloadTooLargeError.__mro__[1], match=f"{JOB_REQUEST_ENV}='-1'"):
        RequestLimits.from_environ({JOB_REQUEST_ENV: "-1"})
