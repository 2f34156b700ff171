"""A tour of remote_parallel_map on the embedded local cluster (run by `make demo`)."""

import time

from burla import remote_parallel_map


def square(x: int) -> int:
    time.sleep(0.02)
    if x % 25 == 0:
        print(f"input {x}: printed on a worker, shown here")
    return x * x


def picky(x: int) -> int:
    if x == 3:
        raise ValueError(f"{x} is not welcome here")
    return x


def main() -> None:
    started = time.perf_counter()
    squares = remote_parallel_map(square, range(100))
    print(
        f"100 squares, first five {squares[:5]}, sum {sum(squares)}, "
        f"in {time.perf_counter() - started:.2f} s (the first call starts the cluster)"
    )

    started = time.perf_counter()
    remote_parallel_map(abs, [-1])
    print(f"a warm one-input call: {(time.perf_counter() - started) * 1000:.0f} ms")

    for value in remote_parallel_map(square, [7, 8, 9], generator=True, spinner=False):
        print(f"streamed as it finished: {value}")

    try:
        remote_parallel_map(picky, range(6), spinner=False)
    except ValueError as error:
        print(
            f"a remote error came back as itself: ValueError({error}) "
            f"from input {error.burla_input_index}"
        )


if __name__ == "__main__":
    main()
