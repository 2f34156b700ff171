"""A worker that goes over func_ram is stopped and reported as out of memory, with the input
it ran; the rest of the cluster goes on."""

from __future__ import annotations

import pytest

from burla import OutOfMemoryError, WorkerCrashedError, remote_parallel_map

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def hog_on_one(x):
    if x == 1:
        hog = b"x" * (1 << 30)  # written byte by byte: resident, not just reserved
        return len(hog)
    return x


def test_a_worker_over_func_ram_is_stopped_and_named_out_of_memory(cluster):
    with pytest.raises(OutOfMemoryError) as caught:
        remote_parallel_map(hog_on_one, range(3), func_ram=0.25, spinner=False)
    error = caught.value
    assert isinstance(error, WorkerCrashedError)
    assert error.burla_input_index == 1
    message = str(error)
    assert "input 1 failed" in message
    assert "func_ram=0.25 GB" in message
    assert "ask for more with func_ram=" in message
    # Retried, it fails again the same way; with room, the same input runs.
    with pytest.raises(OutOfMemoryError, match="input 1 failed after 2 tries"):
        remote_parallel_map(hog_on_one, [0, 1], func_ram=0.25, retries=1, spinner=False)
    assert remote_parallel_map(hog_on_one, range(3), func_ram=2, spinner=False) == [0, 1 << 30, 2]
