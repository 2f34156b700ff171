"""`python -m benchmarks run [--workload W ...] [--system S ...] [--repeat N] [--out DIR]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.runner import PAIR_TIMEOUT_S, RunOptions, run
from benchmarks.systems import SYSTEMS
from benchmarks.workloads import WORKLOADS


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare burla with multiprocessing, joblib, dask and ray on this machine.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run", help="run (system, workload) pairs, each in a fresh interpreter"
    )
    run_parser.add_argument(
        "--workload",
        nargs="+",
        action="extend",
        choices=list(WORKLOADS),
        metavar="W",
        help=f"workloads to run (default: all of {', '.join(WORKLOADS)})",
    )
    run_parser.add_argument(
        "--system",
        nargs="+",
        action="extend",
        choices=SYSTEMS,
        metavar="S",
        help=f"systems to run (default: all of {', '.join(SYSTEMS)})",
    )
    run_parser.add_argument("--repeat", type=int, default=3, help="repetitions per pair")
    run_parser.add_argument(
        "--out", type=Path, help="results folder (default: benchmarks/results/<UTC timestamp>)"
    )
    run_parser.add_argument(
        "--timeout",
        type=float,
        default=PAIR_TIMEOUT_S,
        help=f"seconds one pair may take before it is stopped and reported failed "
        f"(default {PAIR_TIMEOUT_S:g})",
    )
    run_parser.add_argument(
        "--profile",
        action="store_true",
        help="also write a pyinstrument profile (client side) of every pair to profiles/",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    run(
        RunOptions(
            workloads=tuple(dict.fromkeys(args.workload or WORKLOADS)),
            systems=tuple(dict.fromkeys(args.system or SYSTEMS)),
            repeat=args.repeat,
            out=args.out,
            timeout_s=args.timeout,
            profile=args.profile,
        )
    )


if __name__ == "__main__":
    main()
