"""systemctl on a fake VM (tests/fakes/vm_image.py): it runs the units of /etc/systemd/system
as supervised processes in the VM's process group and mount namespace, as systemd would.

    vm_systemctl.py VM_DIR [OPTIONS] VERB [UNIT...]

Verbs: daemon-reload; enable and disable [--now] UNIT...; start, stop and restart UNIT...;
is-active and is-enabled UNIT... . Options: --now, -q/--quiet, and --no-block and
--no-pager, which change nothing here. Exit codes and messages are systemctl's: 5 for a
unit that is not found, 3 for is-active of a unit that is not active.

A unit file is read when the unit is first started and kept loaded until daemon-reload:
a start after the file changed warns, as systemd does, and uses the loaded one. Its
[Service] may set ExecStart (one; `${VAR}` and `$VAR` expanded; a program without a path
looked up in systemd's fixed path; a `-` prefix), Environment, EnvironmentFile ( `-` for
optional), WorkingDirectory (/ when not set), Restart (no, always, on-failure), RestartSec
(100 ms when not set), TimeoutStopSec (90 s), Type (simple or exec) and User (root); [Unit]
Description, Documentation, After, Before, Wants and Requires, which are taken but change
nothing (no ordering, no dependencies); [Install] WantedBy. Any other setting fails the start
and says it is not modelled.

The main process runs with the machine's service environment (VM_DIR/machine.json, not
the caller's) and the unit's, its output appended to VM_DIR/units/NAME.log with the
supervisor's own lines. One supervisor process per started unit restarts it as Restart=
says and, when stopped, sends SIGTERM to the main process and its descendants, SIGKILL
after TimeoutStopSec. Enabling links the unit into /etc/systemd/system/TARGET.wants/ for
each WantedBy=; the fake VM starts those units when it boots. Supervisor state and loaded
units live in VM_DIR/run, emptied at each boot. Not modelled: cgroups (a process that
leaves the main process's tree before a stop is not stopped with it; the VM's stop gets
it), the journal, other unit types, users.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNIT_DIR = Path("/etc/systemd/system")
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where systemd looks for an ExecStart program given without a path."""
NOT_FOUND = 5
INACTIVE = 3
_TAKEN = {
    "Unit": {"Description", "Documentation", "After", "Before", "Wants", "Requires"},
    "Service": {
        "ExecStart", "Environment", "EnvironmentFile", "WorkingDirectory", "Restart",
        "RestartSec", "TimeoutStopSec", "Type", "User",
    },
    "Install": {"WantedBy"},
}  # fmt: skip
_START_WAIT_S = 10.0
_START_LIMIT_BURST, _START_LIMIT_S = 5, 10.0
"""systemd's default start limit: a unit started 5 times within 10 s is failed instead."""


class UnitError(Exception):
    """A unit file this systemctl cannot run."""


@dataclass
class Unit:
    """A unit's [Service] settings, as a start runs them."""

    name: str
    command: list[str] = field(default_factory=list)
    ignore_failure: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)
    working_directory: str = "/"
    restart: str = "no"
    restart_s: float = 0.1
    stop_timeout_s: float = 90.0
    exec_type: bool = False


def parse_unit(name: str, text: str) -> Unit:
    unit = Unit(name)
    section = ""
    starts = 0
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, equals, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or key not in _TAKEN.get(section, set()):
            raise UnitError(f"{name}: [{section}] {key}= is not modelled by this fake systemctl")
        if key == "ExecStart":
            starts += 1
            _set_command(unit, value)
        elif key == "Environment":
            unit.environment.update(_assignments(shlex.split(value)))
        elif key == "EnvironmentFile":
            unit.environment_files.append(value)
        elif key == "WorkingDirectory":
            unit.working_directory = value
        elif key == "Restart":
            if value not in ("no", "always", "on-failure"):
                raise UnitError(f"{name}: Restart={value} is not modelled")
            unit.restart = value
        elif key in ("RestartSec", "TimeoutStopSec"):
            seconds = _seconds(name, value)
            if key == "RestartSec":
                unit.restart_s = seconds
            else:
                unit.stop_timeout_s = seconds
        elif key == "Type":
            if value not in ("simple", "exec"):
                raise UnitError(f"{name}: Type={value} is not modelled")
            unit.exec_type = value == "exec"
        elif key == "User" and value not in ("root", "0"):
            raise UnitError(f"{name}: User={value} is not modelled (units run as root)")
    if starts != 1:
        raise UnitError(
            f"{name}: Service has {'no' if not starts else 'more than one'} ExecStart= setting"
        )
    return unit


def _set_command(unit: Unit, value: str) -> None:
    words = shlex.split(value)
    if words and words[0].startswith("-"):
        unit.ignore_failure, words[0] = True, words[0][1:]
    if not words or words[0][:1] in "@+!:" or ("/" in words[0] and words[0][0] != "/"):
        raise UnitError(f"{unit.name}: ExecStart={value} is not modelled")
    unit.command = words


def _assignments(words: list[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in words if "=" in word)


def _seconds(name: str, value: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min)?", value)
    if found is None:
        raise UnitError(f"{name}: cannot read the time span {value!r}")
    scale = {"ms": 0.001, "min": 60.0}.get(found[2] or "s", 1.0)
    return float(found[1]) * scale


@dataclass(frozen=True)
class Machine:
    """The VM's own directory, where systemctl keeps what systemd keeps in memory and /run."""

    directory: Path

    @property
    def run(self) -> Path:
        return self.directory / "run" / "systemd"

    def log(self, name: str) -> Path:
        path = self.directory / "units" / f"{name.removesuffix('.service')}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def note(self, name: str, line: str) -> None:
        """A line of the unit's log, as systemd would write to its journal."""
        with open(self.log(name), "a") as log:
            log.write(f"systemd: {line}\n")

    def state(self, name: str) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.run / f"{name}.json").read_text())
        except FileNotFoundError:
            return {}
        return state

    def set_state(self, name: str, **changes: Any) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        path = self.run / f"{name}.json"
        spare = path.with_suffix(f".{os.getpid()}")
        spare.write_text(json.dumps(self.state(name) | changes))
        spare.replace(path)  # readers see the old state or the new one, never half

    def loaded(self, name: str) -> Path:
        return self.run / "loaded" / name

    def service_environment(self) -> dict[str, str]:
        environment: dict[str, str] = json.loads((self.directory / "machine.json").read_text())
        return environment


def unit_name(given: str) -> str:
    if "." not in given:
        return f"{given}.service"
    if not given.endswith(".service"):
        raise UnitError(f"{given}: only .service units are modelled")
    return given


def active_state(machine: Machine, name: str) -> str:
    """active, activating (between restarts), failed or inactive."""
    state = machine.state(name)
    supervisor = state.get("supervisor")
    if supervisor and _is_supervisor(supervisor, machine, name):
        return str(state.get("state", "activating"))
    return "failed" if state.get("state") == "failed" else "inactive"


def load(machine: Machine, name: str) -> Unit:
    """The unit as systemd has it loaded: read now unless loaded before daemon-reload."""
    on_disk = (UNIT_DIR / name).read_text()
    loaded = machine.loaded(name)
    if not loaded.exists():
        loaded.parent.mkdir(parents=True, exist_ok=True)
        loaded.write_text(on_disk)
    elif loaded.read_text() != on_disk:
        print(
            f"Warning: The unit file, source configuration file or drop-ins of {name} changed "
            "on disk. Run 'systemctl daemon-reload' to reload units.",
            file=sys.stderr,
        )
    return parse_unit(name, loaded.read_text())


def start(machine: Machine, name: str) -> int:
    if active_state(machine, name) in ("active", "activating"):
        return 0
    try:
        unit = load(machine, name)
    except FileNotFoundError:
        print(f"Failed to start {name}: Unit {name} not found.", file=sys.stderr)
        return NOT_FOUND
    except UnitError as error:
        print(f"Failed to start {name}: {error}", file=sys.stderr)
        return 1
    (machine.run / f"{name}.json").unlink(missing_ok=True)
    with open(machine.log(name), "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-I", __file__, str(machine.directory), "--supervise", name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
    deadline = time.monotonic() + _START_WAIT_S
    while machine.state(name).get("state") not in ("active", "failed", "inactive"):
        if supervisor.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if unit.exec_type and machine.state(name).get("state") != "active":
        print(
            f"Job for {name} failed because the control process exited with error code.\n"
            f"See the log {machine.log(name)} for details.",
            file=sys.stderr,
        )
        return 1
    return 0


def stop(machine: Machine, name: str) -> int:
    supervisor = machine.state(name).get("supervisor")
    if not (UNIT_DIR / name).exists() and not supervisor:
        print(f"Failed to stop {name}: Unit {name} not loaded.", file=sys.stderr)
        return NOT_FOUND
    if supervisor and _is_supervisor(supervisor, machine, name):
        os.kill(supervisor, signal.SIGTERM)
        while _is_supervisor(supervisor, machine, name):
            time.sleep(0.01)
    return 0


def enable(machine: Machine, name: str, *, now: bool) -> int:
    path = UNIT_DIR / name
    if not path.exists():
        print(f"Failed to enable unit: Unit file {name} does not exist.", file=sys.stderr)
        return 1
    targets = _install_targets(path.read_text())
    if not targets:
        print(
            "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
            "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
            "units). This means they are not meant to be enabled or disabled using systemctl.",
            file=sys.stderr,
        )
    for target in targets:
        link = UNIT_DIR / f"{target}.wants" / name
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
            print(f"Created symlink {link} → {path}.", file=sys.stderr)
    return start(machine, name) if now else 0


def _install_targets(text: str) -> list[str]:
    """The WantedBy= targets of a unit file's [Install] section (all enable reads of it)."""
    install = re.search(r"^\s*\[Install\]\s*$(.*?)(?=^\s*\[|\Z)", text, re.MULTILINE | re.DOTALL)
    values = re.findall(r"^\s*WantedBy\s*=(.*)$", install[1], re.MULTILINE) if install else []
    return [target for value in values for target in value.split()]


def disable(machine: Machine, name: str, *, now: bool) -> int:
    for link in UNIT_DIR.glob(f"*.wants/{name}"):
        link.unlink()
        print(f"Removed {link}.", file=sys.stderr)
    return stop(machine, name) if now else 0


def is_enabled(name: str) -> tuple[str, int]:
    if any(UNIT_DIR.glob(f"*.wants/{name}")):
        return "enabled", 0
    if not (UNIT_DIR / name).exists():
        return f"Failed to get unit file state for {name}: No such file or directory", 1
    return "disabled", 1


def main(argv: list[str]) -> int:
    machine = Machine(Path(argv[0]))
    options = {arg for arg in argv[1:] if arg.startswith("-")}
    words = [arg for arg in argv[1:] if not arg.startswith("-")]
    unknown = options - {"--now", "-q", "--quiet", "--no-block", "--no-pager", "--supervise"}
    if unknown:
        print(f"systemctl: unrecognized option '{sorted(unknown)[0]}'", file=sys.stderr)
        return 1
    if "--supervise" in options:
        supervise(machine, words[0])
        return 0
    if not words:
        print("systemctl: this fake lists no units; give a verb", file=sys.stderr)
        return 1
    verb, given = words[0], words[1:]
    quiet, now = bool(options & {"-q", "--quiet"}), "--now" in options
    if verb == "daemon-reload":
        shutil.rmtree(machine.run / "loaded", ignore_errors=True)
        return 0
    if verb not in ("start", "stop", "restart", "enable", "disable", "is-active", "is-enabled"):
        print(f"Unknown command verb '{verb}'.", file=sys.stderr)
        return 1
    if not given:
        print(f"Too few arguments for {verb}.", file=sys.stderr)
        return 1
    try:
        names = [unit_name(unit) for unit in given]
    except UnitError as error:
        print(f"Failed to {verb}: {error}", file=sys.stderr)
        return 1
    worst = 0
    for name in names:
        code = _do(machine, verb, name, quiet=quiet, now=now)
        worst = worst or code
    return worst


def _do(machine: Machine, verb: str, name: str, *, quiet: bool, now: bool) -> int:
    if verb in ("is-active", "is-enabled"):
        text, code = (
            is_enabled(name) if verb == "is-enabled" else _is_active(active_state(machine, name))
        )
        if not quiet:
            print(text, file=sys.stderr if text.startswith("Failed") else sys.stdout)
        return code
    if verb == "start":
        return start(machine, name)
    if verb == "stop":
        return stop(machine, name)
    if verb == "restart":
        return stop(machine, name) or start(machine, name)
    if verb == "enable":
        return enable(machine, name, now=now)
    return disable(machine, name, now=now)


def _is_active(state: str) -> tuple[str, int]:
    return state, 0 if state == "active" else INACTIVE


# The supervisor: one process per started unit, in the VM's process group ----------------


def supervise(machine: Machine, name: str) -> None:
    unit = parse_unit(name, machine.loaded(name).read_text())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    machine.set_state(name, supervisor=os.getpid(), state="activating")
    starts: list[float] = []
    while True:
        now = time.monotonic()
        starts = [*(at for at in starts if at > now - _START_LIMIT_S), now]
        code = _run_once(machine, unit, stopping)
        if stopping.is_set():
            break
        failed = code != 0 and not unit.ignore_failure
        if unit.restart == "no" or (unit.restart == "on-failure" and not failed):
            machine.set_state(name, state="failed" if failed else "inactive", supervisor=None)
            return
        if len(starts) >= _START_LIMIT_BURST:
            machine.note(name, f"{name}: Start request repeated too quickly.")
            machine.set_state(name, state="failed", supervisor=None, main=None)
            return
        machine.note(name, f"{name}: Scheduled restart job (exit status {code}).")
        machine.set_state(name, state="activating", main=None)
        if stopping.wait(unit.restart_s):
            break
    machine.note(name, f"Stopped {name}.")
    machine.set_state(name, state="inactive", supervisor=None, main=None)


def _run_once(machine: Machine, unit: Unit, stopping: threading.Event) -> int:
    """Run the main process to its end (or, once stopping, stop it); its exit status."""
    environment = machine.service_environment() | unit.environment
    for entry in unit.environment_files:
        path = Path(entry.removeprefix("-"))
        if path.exists():
            environment |= _assignments(shlex.split(path.read_text(), comments=True))
        elif not entry.startswith("-"):
            machine.note(unit.name, f"{unit.name}: Failed to load environment files: {path}")
            return 1
    argv = _expand(unit.command, environment)
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=SYSTEMD_PATH)
    try:
        with open(machine.log(unit.name), "ab") as log:
            child = subprocess.Popen(
                [program or argv[0], *argv[1:]],
                cwd=unit.working_directory.removeprefix("-"),
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except OSError as error:
        machine.note(unit.name, f"{unit.name}: Failed to execute {argv[0]}: {error}")
        machine.set_state(unit.name, state="failed")
        return 203  # systemd's status=203/EXEC
    machine.note(unit.name, f"Started {unit.name} (main PID {child.pid}).")
    machine.set_state(unit.name, state="active", main=child.pid)
    deadline: float | None = None
    tree: list[int] = []
    while True:
        try:
            code = child.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        if stopping.is_set() and deadline is None:
            tree = [child.pid, *_descendants(child.pid)]
            _signal(tree, signal.SIGTERM)
            deadline = time.monotonic() + unit.stop_timeout_s
        if deadline is not None and time.monotonic() > deadline:
            _signal(tree, signal.SIGKILL)
        if code is not None:
            if not any(_alive(pid) for pid in tree[1:]):
                machine.note(unit.name, f"{unit.name}: Main process exited, status={code}.")
                return code
            time.sleep(0.05)  # its descendants are still stopping


def _expand(words: list[str], environment: dict[str, str]) -> list[str]:
    """systemd's variable expansion: `$VAR` alone splits into words, `${VAR}` does not."""
    argv: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_]\w*)", word)
        if whole:
            argv.extend(environment.get(whole[1], "").split())
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_]\w*)\}", lambda m: environment.get(m[1], ""), word))
    return argv


def _stat(pid: int) -> list[str] | None:
    """A live process's /proc stat fields after its name, or None (gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in "ZX" else fields


def _alive(pid: int) -> bool:
    return _stat(pid) is not None


def _is_supervisor(pid: int, machine: Machine, name: str) -> bool:
    """Whether pid is still this unit's supervisor (not gone, nor a pid given again)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    wanted = [str(machine.directory).encode(), b"--supervise", name.encode()]
    return command[-4:-1] == wanted and _alive(pid)


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, waiting = [], [root]
    while waiting:
        children = parents.get(waiting.pop(), [])
        found.extend(children)
        waiting.extend(children)
    return found


def _signal(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
