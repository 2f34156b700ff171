"""LocalComputeProvider: a cluster's machines as node_service processes on this machine.

Each node has a directory, `root/"nodes"/<node_id>`, which is the whole record of it:

    node.json   its node type, pid and process start time, written when it is spawned
    node.log    the process's stdout and stderr
    address     "host:port", written (atomically) by the node once it listens
    stopping    present while it is being deleted

The process gets the provider's environment plus BURLA_NODE_ID, BURLA_NODE_TYPE (the
NodeType as JSON), BURLA_MAIN_URL, BURLA_NODE_DIR and the boot spec's `env`, and runs in
its own session, in its node directory. A machine is BOOTING until its address file
exists, then RUNNING at that address; FAILED once its process has exited.

Because the record lives on disk, a new provider on the same root (a restarted
main_service) lists and deletes the nodes an earlier one started. A process is taken to
be the node only while /proc shows a live process with the recorded pid and start time,
so a pid reused by another program is never signalled.

A spare (burla.backends.local.node_spare) is a node process started before its node is
created, given to the provider or started by start_spare: the next create() hands it its
node rather than starting a process.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from burla.backends.boot_env import check_boot_env, node_identity
from burla.backends.local.node_spare import LOG_FILE, NODE_COMMAND, start_spare
from burla.backends.local.processes import signal_group, spawn, wait_while
from burla.backends.path_names import check_path_name, is_path_name
from burla.core.errors import BackendError, ConflictError, InvalidRequestError
from burla.core.protocols import BootSpec, Machine, MachineStatus

ADDRESS_FILE = "address"
RECORD_FILE = "node.json"
STOPPING_FILE = "stopping"

_KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class _Record:
    node_id: str
    node_type: str
    pid: int
    start_ticks: int


@dataclass(frozen=True)
class _ProcessStat:
    state: str
    start_ticks: int


class LocalComputeProvider:
    """The ComputeProvider protocol with local processes (see module doc).

    `command` starts a node; it defaults to this interpreter running
    burla.services.node_service. `spare` is a spare of that command already started
    (node_spare.start_spare). Deleting a node sends SIGTERM to its process group, waits
    up to `stop_grace_s`, then sends SIGKILL.
    """

    def __init__(
        self,
        root: Path,
        command: Sequence[str] | None = None,
        *,
        stop_grace_s: float = 3.0,
        spare: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self._nodes = Path(root) / "nodes"
        self._command = list(command) if command is not None else list(NODE_COMMAND)
        if not self._command:
            raise InvalidRequestError("the command that starts a node cannot be empty")
        self._stop_grace_s = stop_grace_s
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._spare = spare

    def start_spare(self) -> int:
        """Start the next node's process now, to load its modules while the caller goes
        on; the next create() hands it its node (see module doc). Its pid. The provider's
        command must take a spare's boot (node_service's does)."""
        if self._spare is None:
            self._spare = start_spare(self._nodes, self._command)
        return self._spare.pid

    def directory(self, node_id: str) -> Path:
        """The node's directory: its record, log and address file."""
        return self._nodes / node_id

    async def create(self, boot: BootSpec) -> Machine:
        node_id = boot.node_id
        check_path_name("node id", node_id)
        check_boot_env(boot)
        directory = self.directory(node_id)
        self._nodes.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir()
        except FileExistsError:
            raise ConflictError(
                f"a machine named {node_id!r} already exists; delete it first or choose "
                "another node id"
            ) from None
        environment = {
            **os.environ,
            **node_identity(boot),
            "BURLA_NODE_DIR": str(directory),
            **boot.env,
        }
        # Shielded: once the process exists it must be recorded, or nobody would stop it.
        with anyio.CancelScope(shield=True):
            record = await anyio.to_thread.run_sync(
                self._spawn, node_id, boot.node_type.name, environment
            )
        return self._describe(record)

    def _spawn(self, node_id: str, node_type: str, environment: dict[str, str]) -> _Record:
        """Start the node's process, or hand the spare its boot, and write its record.
        Blocking: run in a worker thread."""
        directory = self.directory(node_id)
        try:
            process = self._spare_for(directory, environment) or spawn(
                self._command, directory, directory / LOG_FILE, environment
            )
        except OSError as error:
            shutil.rmtree(directory, ignore_errors=True)
            raise BackendError(
                f"could not start node {node_id!r} with {self._command}: {error}; "
                "check the provider's command"
            ) from error
        self._children[node_id] = process
        stat = _process_stat(process.pid)  # not reaped yet, so it is there even if it died
        start_ticks = stat.start_ticks if stat is not None else -1
        record = _Record(node_id, node_type, process.pid, start_ticks)
        _write_atomically(directory / RECORD_FILE, json.dumps(record.__dict__))
        return record

    def _spare_for(
        self, directory: Path, environment: dict[str, str]
    ) -> subprocess.Popen[bytes] | None:
        """The spare, told to boot as the node of `directory`; None if there is none alive."""
        spare, self._spare = self._spare, None
        if spare is None or spare.stdin is None:
            return None
        changed = {key: value for key, value in environment.items() if os.environ.get(key) != value}
        boot = json.dumps({"env": changed, "directory": str(directory)}) + "\n"
        try:
            with spare.stdin:
                spare.stdin.write(boot.encode())
        except OSError:  # it died: a node of its own is started instead
            spare.wait()
            return None
        return spare

    async def get(self, node_id: str) -> Machine | None:
        self._reap_deleted_elsewhere()
        if not is_path_name(node_id):
            return None
        record = self._read_record(node_id)
        return None if record is None else self._describe(record)

    async def list(self) -> builtins.list[Machine]:
        self._reap_deleted_elsewhere()
        return [self._describe(record) for record in self._records()]

    async def delete(self, node_id: str) -> bool:
        if not is_path_name(node_id):
            return False
        record = self._read_record(node_id)
        child = self._children.pop(node_id, None)
        # Shielded: a delete that was begun ends with the process gone and reaped.
        with anyio.CancelScope(shield=True):
            if record is not None:
                # Its directory may go meanwhile (another main_service on this root
                # deleting it too): its process is stopped all the same.
                with contextlib.suppress(FileNotFoundError):
                    (self.directory(node_id) / STOPPING_FILE).touch()
                await self._stop(record)
            if child is not None:
                if child.returncode is None:  # not reaped, so its group id is still its own
                    signal_group(child.pid, signal.SIGKILL)  # whatever it left in its group
                await anyio.to_thread.run_sync(child.wait)
        if record is None:
            return False
        shutil.rmtree(self.directory(node_id), ignore_errors=True)
        return True

    async def aclose(self) -> None:
        """Delete every node on this root, including those an earlier provider started,
        and the spare."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.stdin is not None:
            spare.stdin.close()  # it exits at once, having no node to be
            await anyio.to_thread.run_sync(spare.wait)
        node_ids = {record.node_id for record in self._records()} | set(self._children)
        async with anyio.create_task_group() as group:
            for node_id in sorted(node_ids):
                group.start_soon(self.delete, node_id)

    def _records(self) -> builtins.list[_Record]:
        try:
            names = sorted(os.listdir(self._nodes))
        except FileNotFoundError:
            return []
        records = (self._read_record(name) for name in names if is_path_name(name))
        return [record for record in records if record is not None]

    def _read_record(self, node_id: str) -> _Record | None:
        try:
            text = (self.directory(node_id) / RECORD_FILE).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None  # no such node, or one still being created
        try:
            return _Record(**json.loads(text))
        except (ValueError, TypeError) as error:
            raise BackendError(
                f"the record of node {node_id!r} at {self.directory(node_id)} is unreadable "
                f"({error}); delete that directory and kill the node's process by hand"
            ) from error

    def _describe(self, record: _Record) -> Machine:
        directory = self.directory(record.node_id)
        if not _is_alive(record):
            return Machine(record.node_id, record.node_type, MachineStatus.FAILED)
        if (directory / STOPPING_FILE).exists():
            return Machine(record.node_id, record.node_type, MachineStatus.STOPPING)
        try:
            address = (directory / ADDRESS_FILE).read_text().strip()
        except FileNotFoundError:
            address = ""
        if not address:
            return Machine(record.node_id, record.node_type, MachineStatus.BOOTING)
        return Machine(record.node_id, record.node_type, MachineStatus.RUNNING, address)

    async def _stop(self, record: _Record) -> None:
        """SIGTERM the node's process group, then SIGKILL it after the grace period."""
        for signum, wait_s in (
            (signal.SIGTERM, self._stop_grace_s),
            (signal.SIGKILL, _KILL_WAIT_S),
        ):
            if not _is_alive(record):
                return
            signal_group(record.pid, signum)
            await wait_while(lambda: _is_alive(record), wait_s)
        if _is_alive(record):
            raise BackendError(
                f"node {record.node_id!r} (pid {record.pid}) survived SIGKILL for "
                f"{_KILL_WAIT_S:g} s; it may be stuck in the kernel, check `ps -p {record.pid}`"
            )

    def _reap_deleted_elsewhere(self) -> None:
        """Reap our own node processes whose node another provider has deleted."""
        for node_id, child in builtins.list(self._children.items()):
            if not self.directory(node_id).exists() and child.poll() is not None:
                del self._children[node_id]


def _process_stat(pid: int) -> _ProcessStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (command) state ppid pgrp session ... starttime ..."; the command may hold ") ".
    fields = text[text.rindex(")") + 2 :].split()
    return _ProcessStat(state=fields[0], start_ticks=int(fields[19]))


def _is_alive(record: _Record) -> bool:
    stat = _process_stat(record.pid)
    return stat is not None and stat.start_ticks == record.start_ticks and stat.state not in "ZX"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, temporary.with_name(path.name))
