"""Compute Engine's operations, zonal and global, as the fake Compute Engine API keeps them:
started RUNNING by a call that changes something, DONE when the change is carried out."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator

from tests.fakes.compute_replies import SELF, Json, Reply, not_found, timestamp

WAIT_S = 2.0
"""How long a wait call waits (Compute Engine's waits up to 2 minutes)."""

Scope = tuple[str, str | None]
"""(project, zone) of a zonal operation; (project, None) of a global one."""


def scope_path(scope: Scope) -> str:
    project, zone = scope
    return f"projects/{project}/zones/{zone}" if zone else f"projects/{project}/global"


class Operations:
    """The operations of every project; every method runs under `lock`, the fake API's."""

    def __init__(self, lock: threading.Condition, ids: Iterator[int]) -> None:
        self._lock = lock
        self._ids = ids
        self._operations: dict[tuple[str, str | None, str], Json] = {}

    def start(self, scope: Scope, kind: str, target: str, target_id: str) -> Json:
        """A RUNNING operation of `kind` (insert, delete, patch, reset...) on the resource
        at `target` (a path under the scope, e.g. "instances/vm-1")."""
        operation_id = str(next(self._ids))
        name = f"operation-{operation_id}"
        now = timestamp()
        operation: Json = {
            "kind": "compute#operation",
            "id": operation_id,
            "name": name,
            "operationType": kind,
            "targetLink": f"{SELF}/{scope_path(scope)}/{target}",
            "targetId": target_id,
            "status": "RUNNING",
            "progress": 0,
            "insertTime": now,
            "startTime": now,
            "selfLink": f"{SELF}/{scope_path(scope)}/operations/{name}",
        }
        if scope[1] is not None:
            operation["zone"] = f"{SELF}/projects/{scope[0]}/zones/{scope[1]}"
        self._operations[(*scope, name)] = operation
        return operation

    def finish(self, operation: Json, failure: Json | None = None) -> None:
        """Mark it DONE, with `failure` (error, httpErrorStatusCode...) when it failed."""
        operation.update(status="DONE", progress=100, endTime=timestamp(), **(failure or {}))
        self._lock.notify_all()

    def listed(self, scope: Scope) -> list[Json]:
        """Every operation of the scope (copies), for a list call to select from."""
        return [
            copy.deepcopy(operation)
            for (*where, _), operation in self._operations.items()
            if tuple(where) == scope
        ]

    def get(self, scope: Scope, name: str, *, wait: bool) -> Reply:
        """An operation's state; with `wait`, once it is DONE or after WAIT_S."""
        operation = self._operations.get((*scope, name))
        if operation is None:
            return not_found(f"{scope_path(scope)}/operations/{name}")
        if wait:
            self._lock.wait_for(lambda: operation["status"] == "DONE", timeout=WAIT_S)
        return 200, copy.deepcopy(operation)

    def clear(self) -> None:
        self._operations.clear()
