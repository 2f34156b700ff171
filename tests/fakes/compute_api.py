"""FakeComputeApi: a Compute Engine REST API on 127.0.0.1 whose VMs are local processes.

google-cloud-compute talks to it through `client_options={"api_endpoint": api.endpoint}`
and anonymous credentials. It serves, for any project p and zone z (Google's method id of
each route is what `refuse_next` takes):

    POST   /compute/v1/projects/p/zones/z/instances                  compute.instances.insert
    GET    /compute/v1/projects/p/zones/z/instances                  compute.instances.list
    GET    .../instances/NAME                                        compute.instances.get
    DELETE .../instances/NAME                                        compute.instances.delete
    GET    .../instances/NAME/getGuestAttributes         compute.instances.getGuestAttributes
    POST   .../instances/NAME/reset                                  compute.instances.reset
    POST   .../instances/NAME/setMetadata                      compute.instances.setMetadata
    POST   .../instances/NAME/setLabels                          compute.instances.setLabels
    GET    /compute/v1/projects/p/zones/z/operations                compute.zoneOperations.list
    GET    /compute/v1/projects/p/zones/z/operations/OP            compute.zoneOperations.get
    POST   .../operations/OP/wait                                 compute.zoneOperations.wait
    POST   /compute/v1/projects/p/global/firewalls                  compute.firewalls.insert
    GET    /compute/v1/projects/p/global/firewalls                    compute.firewalls.list
    GET    .../firewalls/NAME                                          compute.firewalls.get
    DELETE .../firewalls/NAME                                       compute.firewalls.delete
    PATCH  .../firewalls/NAME                                        compute.firewalls.patch
    GET    /compute/v1/projects/p/global/operations/OP           compute.globalOperations.get
    POST   .../operations/OP/wait                               compute.globalOperations.wait
    GET    /vms/p/z/NAME/computeMetadata/v1/...        metadata.get  (tests/fakes/vm_metadata)
    PUT    /vms/p/z/NAME/computeMetadata/v1/instance/guest-attributes/NS/KEY  metadata.put
    POST   /token                                    oauth2.token  (tests/fakes/oauth_token)

Lists take `filter` (both documented forms, tests/fakes/compute_lists), `orderBy`,
`maxResults` and `pageToken`; firewall rules are tests/fakes/compute_firewalls'. Changes
answer with a RUNNING operation, DONE once the change is carried out.

Instances meet the rules of tests/fakes/compute_instances. One carries `metadata.fingerprint`
and `labelFingerprint`, hashes of their contents: setMetadata and setLabels with a missing
or stale one are refused 412 conditionNotMet, as the reference says. Each network interface
gets networkIP `internal_ip`, and its access config natIP `external_ip`.

A VM is a directory on this machine in which bash runs the instance's `startup-script`
metadata, in a process group of its own; or, for a source image registered with `add_image`,
a Debian-like machine of its own mount namespace (tests/fakes/vm_image). Its metadata server
is this same server under `/vms/p/z/NAME`, given to everything it runs as GCE_METADATA_HOST.
Inserting answers with a RUNNING operation; a background thread then starts the VM, marks
the instance RUNNING and the operation DONE. Deleting stops the VM's process group (SIGTERM,
then SIGKILL after `stop_grace_s`) before the operation is DONE; reset is a hard reset, as
Compute Engine's: the group is killed at once and the VM boots again (the startup script
runs again; its directory, its disk, stays). A script that ends leaves its VM RUNNING, as a
real startup script does.

For tests it keeps the insert bodies it received and every request line; answers the next
calls of any route with a transient error Compute Engine documents (`refuse_next`: 403 or
429 rateLimitExceeded, 500 or 503 backendError) or the next insert with any error
(`refuse_next_insert`); makes the next insert's operation finish with errors
(`fail_next_insert_operation`) or never finish (`stall_next_insert_operation`); stops a VM
the way a host error does (`terminate`); and preempts a spot VM (`preempt`) as Compute
Engine does: it records a `compute.instances.preempted` operation, the VM goes STOPPING
while its processes get SIGTERM and then SIGKILL after `stop_grace_s` (Compute Engine's
ACPI soft off, then power off after 30 s), and ends TERMINATED or deleted as its
instanceTerminationAction says. `close` stops every VM it started.

Not modelled: quotas, machine types, images and disks as resources (any source image boots;
only registered ones boot a fake image), networks (any is taken to exist), stop/start,
requestId, instance fingerprints, firewall rules' effect on traffic, regions, and IAM.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from tests.fakes import vm_metadata
from tests.fakes.compute_firewalls import Firewalls
from tests.fakes.compute_instances import (
    insert_problem,
    labels_problem,
    metadata,
    metadata_problem,
    new_instance,
)
from tests.fakes.compute_lists import list_reply
from tests.fakes.compute_operations import Operations
from tests.fakes.compute_replies import (
    SELF,
    TRANSIENT,
    Json,
    MetadataValue,
    Reply,
    already_exists,
    api_error,
    fingerprint,
    not_found,
    not_ready,
    transient_error,
)
from tests.fakes.oauth_token import ACCESS_TOKEN, TOKEN_LIFE_S, token_reply
from tests.fakes.vm_image import FakeImage, boot_command, image_path

__all__ = ["ACCESS_TOKEN", "TOKEN_LIFE_S", "FakeComputeApi", "FakeImage"]

Key = tuple[str, str, str]
"""(project, zone, name) of an instance."""
Stall = Literal["stall"]
STALL: Stall = "stall"

_ZONE = r"/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)"
_GLOBAL = r"/compute/v1/projects/(?P<project>[^/]+)/global"
_INSTANCE = _ZONE + r"/instances/(?P<name>[^/]+)"
_VM = r"/vms/(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<name>[^/]+)/computeMetadata/v1/"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), method_id)
    for method, pattern, method_id in [
        ("POST", _ZONE + r"/instances", "compute.instances.insert"),
        ("GET", _ZONE + r"/instances", "compute.instances.list"),
        ("GET", _INSTANCE, "compute.instances.get"),
        ("DELETE", _INSTANCE, "compute.instances.delete"),
        ("GET", _INSTANCE + r"/getGuestAttributes", "compute.instances.getGuestAttributes"),
        ("POST", _INSTANCE + r"/reset", "compute.instances.reset"),
        ("POST", _INSTANCE + r"/setMetadata", "compute.instances.setMetadata"),
        ("POST", _INSTANCE + r"/setLabels", "compute.instances.setLabels"),
        ("GET", _ZONE + r"/operations", "compute.zoneOperations.list"),
        ("GET", _ZONE + r"/operations/(?P<name>[^/]+)", "compute.zoneOperations.get"),
        ("POST", _ZONE + r"/operations/(?P<name>[^/]+)/wait", "compute.zoneOperations.wait"),
        ("POST", _GLOBAL + r"/firewalls", "compute.firewalls.insert"),
        ("GET", _GLOBAL + r"/firewalls", "compute.firewalls.list"),
        ("GET", _GLOBAL + r"/firewalls/(?P<name>[^/]+)", "compute.firewalls.get"),
        ("DELETE", _GLOBAL + r"/firewalls/(?P<name>[^/]+)", "compute.firewalls.delete"),
        ("PATCH", _GLOBAL + r"/firewalls/(?P<name>[^/]+)", "compute.firewalls.patch"),
        ("GET", _GLOBAL + r"/operations/(?P<name>[^/]+)", "compute.globalOperations.get"),
        ("POST", _GLOBAL + r"/operations/(?P<name>[^/]+)/wait", "compute.globalOperations.wait"),
        ("GET", _VM + r"(?P<path>.+)", "metadata.get"),
        ("PUT", _VM + r"instance/guest-attributes/(?P<path>[^/]+/[^/]+)", "metadata.put"),
        ("POST", r"/token", "oauth2.token"),
    ]
]
METHOD_IDS = frozenset(method_id for _, _, method_id in _ROUTES)


@dataclass(frozen=True)
class _Call:
    """A request, as a route matched it."""

    groups: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def project(self) -> str:
        return self.groups["project"]

    @property
    def zone(self) -> str:
        return self.groups["zone"]

    @property
    def name(self) -> str:
        return self.groups["name"]

    def json(self) -> Json:
        body = json.loads(self.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("the body is not a JSON object")
        return body


@dataclass
class _Vm:
    key: Key
    resource: Json
    directory: Path
    image: FakeImage | None
    process: subprocess.Popen[bytes] | None = None
    guest_attributes: dict[str, str] = field(default_factory=dict)
    deleting: bool = False


class FakeComputeApi:
    """The fake API (see module doc); `start` serves it on a free 127.0.0.1 port.

    `page_limit` caps a list page (Compute Engine's cap is 500); `stop_grace_s` is how
    long a deleted VM's processes have between SIGTERM and SIGKILL. Tests may change both.
    """

    def __init__(self, root: Path, *, page_limit: int = 500, stop_grace_s: float = 3.0) -> None:
        self._root = Path(root)
        self.page_limit = page_limit
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Condition()
        self._ids = itertools.count(7_000_000_000_000_000_001)
        self._operations = Operations(self._lock, self._ids)
        self._firewalls = Firewalls(self._lock, self._operations, self._ids, self._finish_later)
        self._vms: dict[Key, _Vm] = {}
        self._images: dict[str, FakeImage] = {}
        self._workers: list[threading.Thread] = []
        self._refusals: dict[str, list[Reply]] = {}
        self._insert_outcomes: list[Json | Stall] = []
        """How the next inserts' operations end, instead of succeeding: a failure to
        finish with, or STALL."""
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None
        self.inserted: list[Json] = []
        """Every insert body received, as sent."""
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request received."""
        self.internal_ip = "127.0.0.1"
        """What every VM's metadata server gives as its internal IP (its processes run here)."""
        self.external_ip = "127.0.0.1"
        """The natIP of every access config: a VM's external IP."""
        self.service_account_keys: dict[str, Any] = {}
        """Service account email -> the public key (cryptography's) of its key file, whose
        signed JWTs the token endpoint takes."""

    # Running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._serving = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._serving.start()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop every VM, then the server."""
        self.reset()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._serving is not None:
            self._serving.join()

    def reset(self) -> None:
        """Forget everything (instances, firewall rules, images, operations, refusals,
        records), stopping every VM first."""
        with self._lock:
            vms = list(self._vms.values())
            for vm in vms:
                vm.deleting = True
            self._vms.clear()
        for vm in vms:
            self._stop(vm)
        self._join_workers()
        with self._lock:
            self._operations.clear()
            self._firewalls.clear()
            self._images.clear()
            self._refusals.clear()
            self._insert_outcomes.clear()
            self.inserted.clear()
            self.requests.clear()

    # Test controls ---------------------------------------------------------------------

    def add_image(self, name: str, image: FakeImage) -> None:
        """VMs whose boot disk's sourceImage is `name` (projects/P/global/images/NAME, or a
        family, in any form the API takes) boot from this fake image."""
        path = image_path(name, "")
        if not re.fullmatch(r"projects/[^/]+/global/images/.+", path):
            raise ValueError(
                f"name the image with its project: projects/P/global/images/NAME, not {name!r}"
            )
        with self._lock:
            self._images[path] = image

    def refuse_next(self, method_id: str, *, code: int = 503, times: int = 1) -> None:
        """Answer the next `times` calls of a route (Google's method id, e.g.
        "compute.firewalls.insert") with the transient error of status `code` (403, 429,
        500 or 503) as Compute Engine gives it; nothing is done."""
        if method_id not in METHOD_IDS:
            raise ValueError(f"no route {method_id!r}; the fake serves {sorted(METHOD_IDS)}")
        if code not in TRANSIENT:
            raise ValueError(f"{code} is not one of the transient errors {sorted(TRANSIENT)}")
        with self._lock:
            self._refusals.setdefault(method_id, []).extend([transient_error(code)] * times)

    def refuse_next_insert(self, code: int, reason: str, message: str) -> None:
        """Answer the next insert with this HTTP error; nothing is created."""
        with self._lock:
            refusals = self._refusals.setdefault("compute.instances.insert", [])
            refusals.append(api_error(code, reason, message))

    def fail_next_insert_operation(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        quota_limit: str | None = None,
    ) -> None:
        """Accept the next insert, then finish its operation with this error and remove the
        instance, as Compute Engine does when a VM cannot be made. `http_status` adds the
        operation's httpErrorStatusCode and httpErrorMessage; `quota_limit` a quotaInfo."""
        entry: Json = {"code": code, "message": message}
        if quota_limit is not None:
            quota = {"limitName": quota_limit, "metricName": "compute.googleapis.com/quota"}
            entry["errorDetails"] = [{"quotaInfo": quota}]
        failure: Json = {"error": {"errors": [entry]}}
        if http_status is not None:
            failure["httpErrorStatusCode"] = http_status
            failure["httpErrorMessage"] = "FORBIDDEN" if http_status == 403 else "ERROR"
        with self._lock:
            self._insert_outcomes.append(failure)

    def stall_next_insert_operation(self) -> None:
        """Boot the next inserted VM but leave its operation RUNNING for good."""
        with self._lock:
            self._insert_outcomes.append(STALL)

    def terminate(self, project: str, zone: str, name: str) -> None:
        """Stop a VM's processes and leave it TERMINATED, as a preemption or host error does."""
        with self._lock:
            vm = self._vms[(project, zone, name)]
        self._stop(vm)
        with self._lock:
            vm.resource["status"] = "TERMINATED"

    def preempt(self, project: str, zone: str, name: str) -> None:
        """Preempt a RUNNING spot VM (see module doc); returns once it is TERMINATED or
        deleted. ValueError for a VM that is not spot or not running, which Compute Engine
        would not preempt."""
        key = (project, zone, name)
        with self._lock:
            vm = self._vms.get(key)
            if vm is None or vm.deleting or vm.resource["status"] != "RUNNING":
                raise ValueError(f"there is no running VM {name!r} to preempt")
            scheduling = vm.resource["scheduling"]
            if scheduling["provisioningModel"] != "SPOT":
                raise ValueError(f"VM {name!r} is not a spot VM; only spot VMs are preempted")
            operation = self._start_operation(vm, "compute.instances.preempted")
            operation.update(statusMessage="Instance was preempted.", user="system")
            self._operations.finish(operation)
            vm.resource["status"] = "STOPPING"
            delete = scheduling["instanceTerminationAction"] == "DELETE"
            if delete:
                vm.deleting = True
        self._stop(vm)
        with self._lock:
            if not delete:
                vm.resource["status"] = "TERMINATED"
            elif self._vms.get(key) is vm:
                del self._vms[key]

    def pid(self, project: str, zone: str, name: str) -> int | None:
        """The process id of a VM's boot (its startup script, or a fake image's boot script,
        which leads its process group), while it has one."""
        with self._lock:
            vm = self._vms.get((project, zone, name))
            return None if vm is None or vm.process is None else vm.process.pid

    def directory(self, project: str, zone: str, name: str) -> Path:
        """A VM's directory, where its startup script runs."""
        with self._lock:
            return self._vms[(project, zone, name)].directory

    @staticmethod
    def project_number(project: str) -> str:
        """The project's number, as metadata servers give it (a stable 12-digit number)."""
        return str(100_000_000_000 + zlib.crc32(project.encode()) % 900_000_000_000)

    # The API ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query_string = target.partition("?")
        query = {name: values[-1] for name, values in parse_qs(query_string).items()}
        with self._lock:
            self.requests.append((method, path))
        for route_method, pattern, method_id in _ROUTES:
            found = pattern.fullmatch(path)
            if found and route_method == method:
                call = _Call(found.groupdict(), query, headers, body)
                try:
                    return self._answer(method_id, call)
                except ValueError as error:  # the body is no JSON object
                    return api_error(400, "parseError", f"Invalid JSON payload received. {error}")
        return api_error(404, "notFound", f"{method} {path} is not part of this fake API")

    def _answer(self, method_id: str, call: _Call) -> Reply:
        with self._lock:
            if method_id == "compute.instances.insert":
                self.inserted.append(copy.deepcopy(call.json()))
            refusals = self._refusals.get(method_id)
            if refusals:
                return refusals.pop(0)
        handler: Callable[[_Call], Reply] = getattr(self, _HANDLERS[method_id])
        return handler(call)

    # Instances

    def _insert(self, call: _Call) -> Reply:
        body = call.json()
        refusal = insert_problem(body)
        if refusal:
            return refusal
        name = body["name"]
        key = (call.project, call.zone, name)
        with self._lock:
            if key in self._vms:
                return already_exists(f"projects/{key[0]}/zones/{key[1]}/instances/{name}")
            vm = self._new_vm(key, body)
            self._vms[key] = vm
            operation = self._start_operation(vm, "insert")
            outcome = self._insert_outcomes.pop(0) if self._insert_outcomes else None
            self._work(self._boot, vm, operation, outcome)
            return 200, copy.deepcopy(operation)

    def _boot(self, vm: _Vm, operation: Json, outcome: Json | Stall | None) -> None:
        with self._lock:
            if isinstance(outcome, dict):
                if self._vms.get(vm.key) is vm:
                    del self._vms[vm.key]
                self._operations.finish(operation, outcome)
                return
            if not vm.deleting:
                vm.resource["status"] = "STAGING"
                # Started under the lock: a delete either sees the process or stops its start.
                vm.process = self._run_startup_script(vm)
                vm.resource["status"] = "RUNNING"
            if outcome is not STALL:
                self._operations.finish(operation)

    def _run_startup_script(self, vm: _Vm) -> subprocess.Popen[bytes] | None:
        items = vm.resource["metadata"].get("items", [])
        scripts = [item.get("value", "") for item in items if item["key"] == "startup-script"]
        if not scripts and vm.image is None:
            return None
        vm.directory.mkdir(parents=True, exist_ok=True)
        script = vm.directory / "startup-script"
        script.write_text(scripts[0] if scripts else "")
        project, zone, name = vm.key
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(vm.directory),
            "LANG": "C.UTF-8",
            "GCE_METADATA_HOST": f"127.0.0.1:{self.port}/vms/{project}/{zone}/{name}",
        }
        command = ["bash", str(script)]
        if vm.image is not None:
            command, environment = boot_command(vm.directory, vm.image, environment)
        with open(vm.directory / "startup.log", "ab") as log:
            return subprocess.Popen(
                command,
                cwd=vm.directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _get(self, call: _Call) -> Reply:
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            return 200, copy.deepcopy(vm.resource)

    def _list(self, call: _Call) -> Reply:
        with self._lock:
            here = [
                copy.deepcopy(vm.resource)
                for key, vm in self._vms.items()
                if key[:2] == (call.project, call.zone)
            ]
        link = f"{SELF}/projects/{call.project}/zones/{call.zone}/instances"
        return list_reply("compute#instanceList", link, here, call.query, self.page_limit)

    def _delete(self, call: _Call) -> Reply:
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            if vm.deleting:
                return not_ready(f"projects/{call.project}/zones/{call.zone}/instances/{call.name}")
            vm.deleting = True
            vm.resource["status"] = "STOPPING"
            operation = self._start_operation(vm, "delete")
            self._work(self._remove, vm, operation)
            return 200, copy.deepcopy(operation)

    def _remove(self, vm: _Vm, operation: Json) -> None:
        self._stop(vm)
        with self._lock:
            if self._vms.get(vm.key) is vm:
                del self._vms[vm.key]
            self._operations.finish(operation)

    def _reset(self, call: _Call) -> Reply:
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            if vm.deleting or vm.resource["status"] != "RUNNING":
                return not_ready(f"projects/{call.project}/zones/{call.zone}/instances/{call.name}")
            operation = self._start_operation(vm, "reset")
            self._work(self._reboot, vm, operation)
            return 200, copy.deepcopy(operation)

    def _reboot(self, vm: _Vm, operation: Json) -> None:
        self._stop(vm, grace_s=0.0)  # a hard reset: no shutdown
        with self._lock:
            if not vm.deleting and vm.process is None:  # not booted by a reset since
                vm.process = self._run_startup_script(vm)
            self._operations.finish(operation)

    def _set_metadata(self, call: _Call) -> Reply:
        body = call.json()
        items = body.get("items", [])
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            if body.get("fingerprint") != vm.resource["metadata"]["fingerprint"]:
                message = "Supplied fingerprint does not match current metadata fingerprint."
                return api_error(412, "conditionNotMet", message)
            refusal = metadata_problem(items, "metadata")
            if refusal:
                return refusal
            vm.resource["metadata"] = metadata(items)
            return self._changed(vm, "setMetadata")

    def _set_labels(self, call: _Call) -> Reply:
        body = call.json()
        labels = body.get("labels", {})
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            if body.get("labelFingerprint") != vm.resource["labelFingerprint"]:
                message = "Labels fingerprint either invalid or resource labels have changed"
                return api_error(
                    412, "conditionNotMet", message, location="If-Match", locationType="header"
                )
            refusal = labels_problem(labels, "labels")
            if refusal:
                return refusal
            vm.resource.update(labels=dict(labels), labelFingerprint=fingerprint(labels))
            return self._changed(vm, "setLabels")

    def _guest_attributes(self, call: _Call) -> Reply:
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return _instance_not_found(call)
            attributes = dict(vm.guest_attributes)
        variable = call.query.get("variableKey")
        if variable is not None:
            if variable not in attributes:
                return not_found(f"guest attribute {variable} of instance {call.name}")
            return 200, {
                "kind": "compute#guestAttributes",
                "variableKey": variable,
                "variableValue": attributes[variable],
            }
        prefix = call.query.get("queryPath", "")
        items = [
            {"namespace": key.split("/")[0], "key": key.split("/")[1], "value": value}
            for key, value in sorted(attributes.items())
            if key.startswith(prefix)
        ]
        return 200, {
            "kind": "compute#guestAttributes",
            "queryPath": prefix,
            "queryValue": {"items": items},
        }

    # Operations, firewall rules, the metadata server, tokens

    def _zone_operations(self, call: _Call) -> Reply:
        with self._lock:
            operations = self._operations.listed((call.project, call.zone))
        link = f"{SELF}/projects/{call.project}/zones/{call.zone}/operations"
        return list_reply("compute#operationList", link, operations, call.query, self.page_limit)

    def _zone_operation(self, call: _Call) -> Reply:
        with self._lock:
            return self._operations.get((call.project, call.zone), call.name, wait=False)

    def _zone_operation_wait(self, call: _Call) -> Reply:
        with self._lock:
            return self._operations.get((call.project, call.zone), call.name, wait=True)

    def _global_operation(self, call: _Call) -> Reply:
        with self._lock:
            return self._operations.get((call.project, None), call.name, wait=False)

    def _global_operation_wait(self, call: _Call) -> Reply:
        with self._lock:
            return self._operations.get((call.project, None), call.name, wait=True)

    def _firewall_insert(self, call: _Call) -> Reply:
        body = call.json()
        with self._lock:
            return self._firewalls.insert(call.project, body)

    def _firewall_list(self, call: _Call) -> Reply:
        with self._lock:
            return self._firewalls.list(call.project, call.query, self.page_limit)

    def _firewall_get(self, call: _Call) -> Reply:
        with self._lock:
            return self._firewalls.get(call.project, call.name)

    def _firewall_delete(self, call: _Call) -> Reply:
        with self._lock:
            return self._firewalls.delete(call.project, call.name)

    def _firewall_patch(self, call: _Call) -> Reply:
        body = call.json()
        with self._lock:
            return self._firewalls.patch(call.project, call.name, body)

    def _metadata_get(self, call: _Call) -> Reply:
        """A value a VM reads from its metadata server (tests/fakes/vm_metadata)."""
        refusal = vm_metadata.refusal(call.headers)
        if refusal:
            return refusal
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return 404, MetadataValue(f"instance {call.name} is not known")
            facts = vm_metadata.VmFacts(
                project=call.project,
                project_number=self.project_number(call.project),
                zone=call.zone,
                resource=copy.deepcopy(vm.resource),
                guest_attributes=dict(vm.guest_attributes),
                internal_ip=self.internal_ip,
            )
        return vm_metadata.read(call.groups["path"], facts)

    def _metadata_put(self, call: _Call) -> Reply:
        """A guest attribute a VM writes to its metadata server."""
        refusal = vm_metadata.refusal(call.headers)
        if refusal:
            return refusal
        with self._lock:
            vm = self._vms.get((call.project, call.zone, call.name))
            if vm is None:
                return 404, MetadataValue(f"instance {call.name} is not known")
            if not vm_metadata.guest_attributes_enabled(vm.resource):
                return vm_metadata.GUEST_ATTRIBUTES_OFF
            vm.guest_attributes[call.groups["path"]] = call.body.decode()
        return 200, MetadataValue("")

    def _token(self, call: _Call) -> Reply:
        return token_reply(call.headers, call.body, self.service_account_keys)

    # Helpers (the _new_*, _start_*, _changed and _work ones run with the lock held) ----------

    def _new_vm(self, key: Key, body: Json) -> _Vm:
        project, zone, name = key
        instance_id = str(next(self._ids))
        resource = new_instance(
            body, project, zone, instance_id, self.internal_ip, self.external_ip
        )
        directory = self._root / project / zone / f"{name}-{instance_id}"
        return _Vm(key, resource, directory, self._image_of(project, body["disks"]))

    def _image_of(self, project: str, disks: list[Json]) -> FakeImage | None:
        boot = next((disk for disk in disks if disk.get("boot")), disks[0])
        source = boot.get("initializeParams", {}).get("sourceImage")
        return self._images.get(image_path(source, project)) if source else None

    def _start_operation(self, vm: _Vm, kind: str) -> Json:
        project, zone, name = vm.key
        return self._operations.start((project, zone), kind, f"instances/{name}", vm.resource["id"])

    def _changed(self, vm: _Vm, kind: str) -> Reply:
        """The operation of a change already made to the instance, DONE shortly after."""
        operation = self._start_operation(vm, kind)
        self._finish_later(operation)
        return 200, copy.deepcopy(operation)

    def _finish_later(self, operation: Json) -> None:
        self._work(self._finish, operation)

    def _finish(self, operation: Json) -> None:
        with self._lock:
            self._operations.finish(operation)

    def _work(self, target: Callable[..., None], *args: Any) -> None:
        worker = threading.Thread(target=target, args=args, daemon=True)
        self._workers.append(worker)
        worker.start()

    def _join_workers(self) -> None:
        while True:
            with self._lock:
                workers, self._workers = self._workers, []
            if not workers:
                return
            for worker in workers:
                worker.join()

    def _stop(self, vm: _Vm, grace_s: float | None = None) -> None:
        """Stop the VM's whole process group: SIGTERM, then SIGKILL after the grace period
        (`stop_grace_s` unless given; 0 sends SIGKILL alone)."""
        with self._lock:
            process, vm.process = vm.process, None
        if process is None:
            return
        group = process.pid
        grace_s = self.stop_grace_s if grace_s is None else grace_s
        steps = [(signal.SIGTERM, grace_s)] if grace_s > 0 else []
        for signum, wait_s in [*steps, (signal.SIGKILL, 5.0)]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signum)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                process.poll()  # reap the script itself, so it leaves the group
                if not any(_group_members(group)):
                    break
                time.sleep(0.01)
        process.wait()


_HANDLERS = {
    "compute.instances.insert": "_insert",
    "compute.instances.list": "_list",
    "compute.instances.get": "_get",
    "compute.instances.delete": "_delete",
    "compute.instances.getGuestAttributes": "_guest_attributes",
    "compute.instances.reset": "_reset",
    "compute.instances.setMetadata": "_set_metadata",
    "compute.instances.setLabels": "_set_labels",
    "compute.zoneOperations.list": "_zone_operations",
    "compute.zoneOperations.get": "_zone_operation",
    "compute.zoneOperations.wait": "_zone_operation_wait",
    "compute.firewalls.insert": "_firewall_insert",
    "compute.firewalls.list": "_firewall_list",
    "compute.firewalls.get": "_firewall_get",
    "compute.firewalls.delete": "_firewall_delete",
    "compute.firewalls.patch": "_firewall_patch",
    "compute.globalOperations.get": "_global_operation",
    "compute.globalOperations.wait": "_global_operation_wait",
    "metadata.get": "_metadata_get",
    "metadata.put": "_metadata_put",
    "oauth2.token": "_token",
}
"""The FakeComputeApi method that answers each route."""


def _instance_not_found(call: _Call) -> Reply:
    return not_found(f"projects/{call.project}/zones/{call.zone}/instances/{call.name}")


def _group_members(group: int) -> Iterator[int]:
    """Live (not zombie) processes in a process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] not in "ZX":
            yield int(entry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeComputeApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, reply = self.server.api.handle(self.command, self.path, headers, body)
        self.send_response(status)
        if isinstance(reply, MetadataValue):
            data = reply.text.encode()
            self.send_header("metadata-flavor", "Google")
            self.send_header("content-type", reply.content_type)
        else:
            data = json.dumps(reply).encode()
            self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FakeComputeApi.requests` instead."""
