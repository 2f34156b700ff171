"""Running one input of a finished job again on this machine: its function and arguments,
as the job kept them, called as a worker calls them, or written to a folder to share."""

from __future__ import annotations

import pdb
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cloudpickle

from burla.client.connection import Connection
from burla.core.environment import RUNNING_PYTHON
from burla.core.errors import InvalidRequestError, NotFoundError, SerializationError

__all__ = ["KeptInput", "fetch_kept_input", "repro", "run", "write_repro"]

NOT_KEPT = (
    "the job finished before burla kept inputs, or was pruned (finished jobs go, the "
    "longest finished first, once their results pass the cluster's BURLA_RESULTS_MAX_GB)"
)
FUNCTION_FILE = "function.pkl"
INPUT_FILE = "input.pkl"
SCRIPT_FILE = "repro.py"


@dataclass(frozen=True)
class KeptInput:
    """One input of a job as the cluster kept it: the pickled function and the input's
    pickled arguments, exactly as the client sent them."""

    job_id: str
    index: int
    function: bytes
    arguments: bytes
    python_version: str | None
    """The Python the job was submitted from: by-value code needs the same here."""

    def load(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The function and its arguments, unpickled here; SerializationError saying what
        this interpreter lacks when they cannot be."""
        function = self._unpickled(self.function, "the function")
        arguments = self._unpickled(self.arguments, f"input {self.index}")
        return function, tuple(arguments)

    def write(self, folder: str | Path) -> Path:
        """Write FUNCTION_FILE, INPUT_FILE and SCRIPT_FILE (which needs only cloudpickle
        and the standard library) into `folder`; the script's path."""
        where = Path(folder)
        where.mkdir(parents=True, exist_ok=True)
        (where / FUNCTION_FILE).write_bytes(self.function)
        (where / INPUT_FILE).write_bytes(self.arguments)
        script = where / SCRIPT_FILE
        script.write_text(self._script(), encoding="utf-8")
        return script

    def _unpickled(self, data: bytes, what: str) -> Any:
        try:
            return cloudpickle.loads(data)
        except ModuleNotFoundError as error:
            raise SerializationError(
                f"{what} of job {self.job_id} needs module {error.name!r}, which this Python "
                f"({sys.executable}) cannot import; install it here (or put its folder on "
                f"PYTHONPATH) and run again{self._version_note()}"
            ) from error
        except Exception as error:
            raise SerializationError(
                f"{what} of job {self.job_id} cannot be unpickled here: "
                f"{type(error).__name__}: {error}{self._version_note()}"
            ) from error

    def _version_note(self) -> str:
        if self.python_version is None or self.python_version == RUNNING_PYTHON:
            return ""
        return (
            f" (the job was submitted from Python {self.python_version} and this is "
            f"{RUNNING_PYTHON}: run it with Python {self.python_version})"
        )

    def _script(self) -> str:
        return _SCRIPT.format(
            job_id=self.job_id,
            index=self.index,
            python=self.python_version or RUNNING_PYTHON,
            function_file=FUNCTION_FILE,
            input_file=INPUT_FILE,
        )


def fetch_kept_input(connection: Connection, job_id: str, index: int) -> KeptInput:
    """Input `index` of job `job_id` and the job's function, from the cluster.

    NotFoundError when there is no such job or it no longer keeps them;
    InvalidRequestError when the job has no input `index`."""
    job = connection.call("GET", f"/jobs/{job_id}").json()
    spec = job.get("spec") or {}
    n_inputs = spec.get("n_inputs")
    if index < 0 or (isinstance(n_inputs, int) and index >= n_inputs):
        raise InvalidRequestError(
            f"job {job_id} has {n_inputs} inputs (0 to {n_inputs - 1}): there is no input {index}"
            if isinstance(n_inputs, int) and n_inputs > 0
            else f"job {job_id} has no input {index}"
        )
    function = _kept(connection, f"/jobs/{job_id}/function", f"job {job_id}'s function")
    arguments = _kept(connection, f"/jobs/{job_id}/inputs/{index}", f"input {index} of {job_id}")
    return KeptInput(job_id, index, function, arguments, spec.get("python_version"))


def _kept(connection: Connection, path: str, what: str) -> bytes:
    try:
        return connection.call("GET", path).content
    except NotFoundError as error:
        raise NotFoundError(f"{what} is not kept: {NOT_KEPT} ({error})") from error


def run(function: Callable[..., Any], arguments: tuple[Any, ...], *, debug: bool = False) -> Any:
    """Call `function` as a worker does, `function(*arguments)`; what it returns, or its
    exception raised. `debug`: on an exception, print its traceback and open pdb's
    post-mortem at the frame that raised it first."""
    try:
        return function(*arguments)
    except BaseException as error:
        if error.__traceback__ is not None:
            error.__traceback__ = error.__traceback__.tb_next  # this frame is burla's
        if debug:
            traceback.print_exception(error)
            pdb.post_mortem(error.__traceback__)
        raise


def repro(job_id: str, index: int, backend: str | None = None, *, pdb: bool = False) -> Any:
    """Run input `index` of job `job_id` again in this interpreter: what the function
    returns, or its exception raised here (`pdb=True`: after a post-mortem debugger at the
    frame that raised it). The function's modules must be importable here."""
    from burla.client.map import Session, _settings

    kept = fetch_kept_input(Session.for_settings(_settings(backend)), job_id, index)
    function, arguments = kept.load()
    return run(function, arguments, debug=pdb)


def write_repro(job_id: str, index: int, folder: str | Path, backend: str | None = None) -> Path:
    """Write input `index` of job `job_id`, its function and a script that runs them
    (`python repro.py [--pdb]`, needing only cloudpickle) into `folder`; the script's path."""
    from burla.client.map import Session, _settings

    return fetch_kept_input(Session.for_settings(_settings(backend)), job_id, index).write(folder)


def frames_after_burla(error: BaseException) -> TracebackType | None:
    """`error`'s traceback without its leading frames of burla's own (the command that
    called the function): from the function's frame on."""
    package = str(Path(__file__).resolve().parents[1])
    tb = error.__traceback__
    while tb is not None and str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(
        package
    ):
        tb = tb.tb_next
    return tb


_SCRIPT = '''\
"""Input {index} of burla job {job_id}, run again: its function called on its arguments
as a burla worker calls it, function(*arguments).

    python repro.py          print what it returns, or its exception's traceback (exit 1)
    python repro.py --pdb    on an exception, a post-mortem debugger where it was raised

Needs cloudpickle, Python {python} (the job was submitted from it) and whatever packages
the function imports.
"""

import argparse
import pdb
import sys
import traceback
from pathlib import Path

import cloudpickle

HERE = Path(__file__).resolve().parent
PYTHON = "{python}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdb", action="store_true", help="debug the exception it raises")
    options = parser.parse_args()
    running = "%d.%d" % sys.version_info[:2]
    if running != PYTHON:
        print(f"repro.py: the job ran on Python {{PYTHON}}, this is {{running}}", file=sys.stderr)
    function = cloudpickle.loads((HERE / "{function_file}").read_bytes())
    arguments = cloudpickle.loads((HERE / "{input_file}").read_bytes())
    try:
        result = function(*arguments)
    except BaseException as error:
        # Printed by the traceback module, which reads the function's source lines from
        # linecache, where unpickling the function put them (before Python 3.13, the
        # interpreter's own printing of an uncaught exception reads files on disk only).
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        if options.pdb:
            pdb.post_mortem(error.__traceback__.tb_next)
        return 1
    print(repr(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
