"""main_service of this machine's cluster: its command line's `local` flags, and its start.

The start comes before anything else loads: main_service leaves its caller (--detach),
takes its directory (one main_service per directory) and starts its first node's process
as a spare (burla.backends.local.node_spare), which loads its modules while main_service
loads its own (boot). A command line that only sets `local`'s flags is read here, without
the command line's parser (click), which only `cloud`, help and mistakes need.

Only the standard library is loaded here.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal, NamedTuple, get_args

from burla.backends.local.node_spare import start_spare

Containers = Literal["process", "docker"]
"""What the nodes' workers run in: processes (the embedded local backend) or Docker
containers of burla's default image; nodes learn which from BURLA_CONTAINERS."""


class LocalFlags(NamedTuple):
    """What `local` is told: see command.local for each flag."""

    local_dir: Path
    cpus: int = os.cpu_count() or 1
    idle_s: float = 1800.0
    containers: Containers = "process"
    detach: bool = False


class LocalStart(NamedTuple):
    """A main_service that owns its directory, and its first node's spare."""

    root: Path
    lock: IO[str]
    """Open while main_service runs: it holds the directory's lock."""
    spare: subprocess.Popen[bytes]


def serve_local(flags: LocalFlags) -> None:
    """Run this machine's cluster in `flags.local_dir` until it stops; at once if another
    main_service owns that directory. With Docker workers, the engine and the default
    image are checked before anything starts (and before --detach lets the caller go)."""
    if flags.containers == "docker":
        from burla.core.errors import BurlaError
        from burla.services.main_service.boot import check_docker
        from burla.services.main_service.local_config import standby_image

        try:
            check_docker(standby_image(flags.containers))
        except BurlaError as error:
            sys.exit(f"burla's Docker cluster cannot start: {error}")
    started = begin(flags.local_dir, flags.detach)
    if started is None:
        return
    from burla.backends.local.compute import LocalComputeProvider
    from burla.services.main_service.boot import remove_leftover_containers, run_local

    with started.lock:
        compute = LocalComputeProvider(started.root, spare=started.spare)
        if flags.containers == "docker":
            remove_leftover_containers(started.root)
        try:
            run_local(started.root, flags.cpus, flags.containers, flags.idle_s, compute)
        finally:
            if flags.containers == "docker":
                remove_leftover_containers(started.root)


def begin(local_dir: Path, detach: bool) -> LocalStart | None:
    """Leave the caller if told to, take `local_dir` and start the first node's spare;
    None if another main_service owns the directory."""
    if detach:
        if os.fork():
            os._exit(0)  # the caller waits for this process only, not for the cluster
        os.setsid()
    root = local_dir.resolve()  # nodes and containers see the same path
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / "main.lock", "w")  # noqa: SIM115 - held while main_service runs
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return LocalStart(root, lock, start_spare(root / "nodes"))


def _containers(value: str) -> Containers:
    if value not in get_args(Containers):
        raise ValueError(value)
    return value  # type: ignore[return-value]


_READ: dict[str, tuple[str, Callable[[str], object]]] = {
    "--local-dir": ("local_dir", Path),
    "--cpus": ("cpus", int),
    "--idle-s": ("idle_s", float),
    "--containers": ("containers", _containers),
}
"""The `local` flags with a value: the field each sets, and how its value is read."""


def read_local_flags(argv: Sequence[str]) -> LocalFlags | None:
    """The flags of a command line that runs `local` (which may be left out) and sets
    only its flags, each with a value that reads as it must; else None (the command
    line's parser reads it, and says what is wrong)."""
    args = list(argv[1:] if argv[:1] == ["local"] else argv)
    given: dict[str, object] = {}
    while args:
        name, has_value, value = args.pop(0).partition("=")
        if name == "--detach" and not has_value:
            given["detach"] = True
            continue
        if name not in _READ or (not has_value and not args):
            return None
        field, read = _READ[name]
        try:
            given[field] = read(value if has_value else args.pop(0))
        except ValueError:
            return None
    if "local_dir" not in given:
        return None
    return LocalFlags(**given)  # type: ignore[arg-type]
