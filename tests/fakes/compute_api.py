"""FakeComputeApi: a small Compute Engine REST API on 127.0.0.1 whose VMs are local
processes.

google-cloud-compute talks to it through `client_options={"api_endpoint": api.endpoint}`
and anonymous credentials. It serves, for any project p and zone z:

    POST   /compute/v1/projects/p/zones/z/instances                   insert
    GET    /compute/v1/projects/p/zones/z/instances                   list: filter on labels
                                                                     (`labels.K = "V"`,
                                                                     joined by AND),
                                                                     maxResults, pageToken
    GET    /compute/v1/projects/p/zones/z/instances/NAME              get
    DELETE /compute/v1/projects/p/zones/z/instances/NAME              delete
    GET    /compute/v1/projects/p/zones/z/instances/NAME/getGuestAttributes
    GET    /compute/v1/projects/p/zones/z/operations/OP               an operation
    POST   /compute/v1/projects/p/zones/z/operations/OP/wait          wait (up to 2 s) for it

A VM is a directory on this machine in which bash runs the instance's `startup-script`
metadata, in a process group of its own; its internal IP is 127.0.0.1. The VM's metadata
server is this same server under `/vms/p/z/NAME`, given to the script as
GCE_METADATA_HOST; it takes guest attribute PUTs when the instance's metadata enables
guest attributes, and answers GET of
`computeMetadata/v1/instance/network-interfaces/0/ip` as text (`internal_ip`) and
`.../instance/service-accounts/default/token` as JSON (ACCESS_TOKEN), refusing requests
without `Metadata-Flavor: Google` or with `X-Forwarded-For` as Compute Engine's does.
`POST /token` is Google's OAuth token endpoint for service account keys whose token_uri
names it: it gives ACCESS_TOKEN for a JWT signed by a key in `service_account_keys`.
Inserting answers with a RUNNING operation; a background thread then starts the script,
marks the instance RUNNING and the operation DONE. Deleting stops the VM's process group
(SIGTERM, then SIGKILL after `stop_grace_s`) before the operation is DONE. A script that
ends leaves its VM RUNNING, as a real startup script does.

For tests it keeps the insert bodies it received and every request line, refuses the
next insert with an HTTP error (`refuse_next_insert`), makes the next insert's operation
finish with errors (`fail_next_insert_operation`) or never finish
(`stall_next_insert_operation`), and stops a VM the way a preemption does (`terminate`).
`close` stops every VM it started.
"""

from __future__ import annotations

import base64
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

Json = dict[str, Any]


@dataclass(frozen=True)
class MetadataValue:
    """A metadata server's answer: text, or JSON for a token."""

    text: str
    content_type: str = "application/text"


Reply = tuple[int, Json | MetadataValue]
"""A status and a JSON body, or a metadata server's value."""
Key = tuple[str, str, str]
"""(project, zone, name) of an instance or operation."""
Stall = Literal["stall"]
STALL: Stall = "stall"

_ZONE = r"/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_ZONE + r"/instances"), "insert"),
    ("GET", re.compile(_ZONE + r"/instances"), "list"),
    ("GET", re.compile(_ZONE + r"/instances/(?P<name>[^/]+)"), "get"),
    ("DELETE", re.compile(_ZONE + r"/instances/(?P<name>[^/]+)"), "delete"),
    ("GET", re.compile(_ZONE + r"/instances/(?P<name>[^/]+)/getGuestAttributes"), "guest"),
    ("GET", re.compile(_ZONE + r"/operations/(?P<name>[^/]+)"), "operation"),
    ("POST", re.compile(_ZONE + r"/operations/(?P<name>[^/]+)/wait"), "wait"),
    (
        "PUT",
        re.compile(
            r"/vms/(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<name>[^/]+)"
            r"/computeMetadata/v1/instance/guest-attributes/(?P<attribute>[^/]+/[^/]+)"
        ),
        "publish",
    ),
    (
        "GET",
        re.compile(
            r"/vms/(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<name>[^/]+)"
            r"/computeMetadata/v1/(?P<attribute>instance/network-interfaces/0/ip"
            r"|instance/service-accounts/default/token)"
        ),
        "metadata",
    ),
]
_TOKEN_PATH = "/token"
"""Google's OAuth 2.0 token endpoint (oauth2.googleapis.com/token), for service account
keys whose token_uri names this server."""
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience Google's token endpoint requires of an assertion, wherever it is sent."""
ACCESS_TOKEN = "ya29.burla-fake-access-token"
"""The access token this fake gives, to VMs and to service account keys alike."""
TOKEN_LIFE_S = 3599
_INSTANCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_TERM = re.compile(r'labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?')
_SELF = "https://www.googleapis.com/compute/v1"
_WAIT_S = 2.0


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _token() -> Json:
    return {"access_token": ACCESS_TOKEN, "expires_in": TOKEN_LIFE_S, "token_type": "Bearer"}


def _oauth_error(error: str, description: str) -> Json:
    return {"error": error, "error_description": description}


def api_error(code: int, reason: str, message: str) -> Reply:
    """An error reply shaped like Compute Engine's."""
    detail = {"message": message, "domain": "global", "reason": reason}
    return code, {"error": {"code": code, "message": message, "errors": [detail]}}


@dataclass
class _Vm:
    key: Key
    resource: Json
    directory: Path
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
        self._vms: dict[Key, _Vm] = {}
        self._operations: dict[Key, Json] = {}
        self._workers: list[threading.Thread] = []
        self._refusals: list[Reply] = []
        self._insert_outcomes: list[Json | Stall] = []
        """How the next inserts' operations end, instead of succeeding: a failure to
        finish with, or STALL."""
        self._ids = itertools.count(7_000_000_000_000_000_001)
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None
        self.inserted: list[Json] = []
        """Every insert body received, as sent."""
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request received."""
        self.internal_ip = "127.0.0.1"
        """What every VM's metadata server gives as its internal IP (its processes run here)."""
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
        """Forget everything, stopping every VM first."""
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
            self._refusals.clear()
            self._insert_outcomes.clear()
            self.inserted.clear()
            self.requests.clear()

    # Test controls ---------------------------------------------------------------------

    def refuse_next_insert(self, code: int, reason: str, message: str) -> None:
        """Answer the next insert with this HTTP error; nothing is created."""
        with self._lock:
            self._refusals.append(api_error(code, reason, message))

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

    def pid(self, project: str, zone: str, name: str) -> int | None:
        """The process id of a VM's startup script, while it has one."""
        with self._lock:
            vm = self._vms.get((project, zone, name))
            return None if vm is None or vm.process is None else vm.process.pid

    def directory(self, project: str, zone: str, name: str) -> Path:
        """A VM's directory, where its startup script runs."""
        with self._lock:
            return self._vms[(project, zone, name)].directory

    # The API ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query_string = target.partition("?")
        query = {name: values[-1] for name, values in parse_qs(query_string).items()}
        with self._lock:
            self.requests.append((method, path))
        if (method, path) == ("POST", _TOKEN_PATH):
            return self._oauth_token(headers, body)
        for route_method, pattern, action in _ROUTES:
            found = pattern.fullmatch(path)
            if found and route_method == method:
                key = found.group("project"), found.group("zone")
                name = found.groupdict().get("name", "")
                if action == "insert":
                    return self._insert(*key, json.loads(body or b"{}"))
                if action == "list":
                    return self._list(*key, query)
                if action == "get":
                    return self._get(*key, name)
                if action == "delete":
                    return self._delete(*key, name)
                if action == "guest":
                    return self._guest_attributes(*key, name, query)
                if action == "operation":
                    return self._operation(*key, name, wait=False)
                if action == "wait":
                    return self._operation(*key, name, wait=True)
                if action == "metadata":
                    return self._metadata(*key, name, found.group("attribute"), headers)
                return self._publish(*key, name, found.group("attribute"), headers, body)
        return api_error(404, "notFound", f"{method} {path} is not part of this fake API")

    def _insert(self, project: str, zone: str, body: Json) -> Reply:
        with self._lock:
            self.inserted.append(copy.deepcopy(body))
            if self._refusals:
                return self._refusals.pop(0)
            name = body.get("name", "")
            if not isinstance(name, str) or not _INSTANCE_NAME.fullmatch(name):
                return api_error(
                    400, "invalid", f"Invalid value for field 'resource.name': {name!r}"
                )
            for required in ("machineType", "disks", "networkInterfaces"):
                if not body.get(required):
                    return api_error(400, "required", f"Required field 'resource.{required}'")
            key = (project, zone, name)
            if key in self._vms:
                return api_error(
                    409,
                    "alreadyExists",
                    f"The resource 'projects/{project}/zones/{zone}/instances/{name}' "
                    "already exists",
                )
            vm = self._new_vm(key, body)
            self._vms[key] = vm
            operation = self._new_operation(key, "insert")
            outcome = self._insert_outcomes.pop(0) if self._insert_outcomes else None
            self._work(self._boot, vm, operation, outcome)
            return 200, copy.deepcopy(operation)

    def _boot(self, vm: _Vm, operation: Json, outcome: Json | Stall | None) -> None:
        with self._lock:
            if isinstance(outcome, dict):
                if self._vms.get(vm.key) is vm:
                    del self._vms[vm.key]
                self._finish(operation, outcome)
                return
            if not vm.deleting:
                vm.resource["status"] = "STAGING"
                # Started under the lock: a delete either sees the process or stops its start.
                vm.process = self._run_startup_script(vm)
                vm.resource["status"] = "RUNNING"
            if outcome is not STALL:
                self._finish(operation)

    def _run_startup_script(self, vm: _Vm) -> subprocess.Popen[bytes] | None:
        items = vm.resource.get("metadata", {}).get("items", [])
        scripts = [item.get("value", "") for item in items if item.get("key") == "startup-script"]
        if not scripts:
            return None
        vm.directory.mkdir(parents=True)
        script = vm.directory / "startup-script"
        script.write_text(scripts[0])
        project, zone, name = vm.key
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(vm.directory),
            "LANG": "C.UTF-8",
            "GCE_METADATA_HOST": f"127.0.0.1:{self.port}/vms/{project}/{zone}/{name}",
        }
        with open(vm.directory / "startup.log", "ab") as log:
            return subprocess.Popen(
                ["bash", str(script)],
                cwd=vm.directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _get(self, project: str, zone: str, name: str) -> Reply:
        with self._lock:
            vm = self._vms.get((project, zone, name))
            if vm is None:
                return _not_found(f"projects/{project}/zones/{zone}/instances/{name}")
            return 200, copy.deepcopy(vm.resource)

    def _list(self, project: str, zone: str, query: dict[str, str]) -> Reply:
        wanted: dict[str, str] = {}
        text = query.get("filter", "").strip()
        for term in re.split(r"\s+AND\s+", text) if text else []:
            found = _LABEL_TERM.fullmatch(term.strip())
            if found is None:
                return api_error(400, "invalid", f"Invalid value for field 'filter': {text!r}")
            wanted[found.group(1)] = found.group(2)
        try:
            page_size = min(int(query.get("maxResults", "500")), self.page_limit)
            offset = int(query.get("pageToken", "0"))
        except ValueError:
            return api_error(400, "invalid", "maxResults and pageToken must be numbers")
        with self._lock:
            matching = [
                copy.deepcopy(vm.resource)
                for key, vm in sorted(self._vms.items())
                if key[:2] == (project, zone)
                and all(vm.resource.get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
        page = matching[offset : offset + page_size]
        reply: Json = {
            "kind": "compute#instanceList",
            "id": f"projects/{project}/zones/{zone}/instances",
            "selfLink": f"{_SELF}/projects/{project}/zones/{zone}/instances",
        }
        if page:
            reply["items"] = page
        if offset + page_size < len(matching):
            reply["nextPageToken"] = str(offset + page_size)
        return 200, reply

    def _delete(self, project: str, zone: str, name: str) -> Reply:
        key = (project, zone, name)
        with self._lock:
            vm = self._vms.get(key)
            if vm is None:
                return _not_found(f"projects/{project}/zones/{zone}/instances/{name}")
            if vm.deleting:
                return api_error(400, "resourceNotReady", f"The resource '{name}' is not ready")
            vm.deleting = True
            vm.resource["status"] = "STOPPING"
            operation = self._new_operation(key, "delete")
            self._work(self._remove, vm, operation)
            return 200, copy.deepcopy(operation)

    def _remove(self, vm: _Vm, operation: Json) -> None:
        self._stop(vm)
        with self._lock:
            if self._vms.get(vm.key) is vm:
                del self._vms[vm.key]
            self._finish(operation)

    def _guest_attributes(self, project: str, zone: str, name: str, query: dict[str, str]) -> Reply:
        with self._lock:
            vm = self._vms.get((project, zone, name))
            if vm is None:
                return _not_found(f"projects/{project}/zones/{zone}/instances/{name}")
            attributes = dict(vm.guest_attributes)
        variable = query.get("variableKey")
        if variable is not None:
            if variable not in attributes:
                return _not_found(f"guest attribute {variable} of instance {name}")
            return 200, {
                "kind": "compute#guestAttributes",
                "variableKey": variable,
                "variableValue": attributes[variable],
            }
        prefix = query.get("queryPath", "")
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

    def _publish(
        self,
        project: str,
        zone: str,
        name: str,
        attribute: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Reply:
        """A VM's guest attribute PUT to its metadata server."""
        if headers.get("metadata-flavor") != "Google":
            return api_error(403, "forbidden", "missing header Metadata-Flavor: Google")
        with self._lock:
            vm = self._vms.get((project, zone, name))
            if vm is None:
                return _not_found(f"instance {name}")
            items = vm.resource.get("metadata", {}).get("items", [])
            enabled = {"key": "enable-guest-attributes", "value": "TRUE"} in items
            if not enabled:
                return api_error(403, "forbidden", "Guest attributes endpoint access is disabled.")
            vm.guest_attributes[attribute] = body.decode()
        return 200, {}

    def _metadata(
        self, project: str, zone: str, name: str, path: str, headers: dict[str, str]
    ) -> Reply:
        """A value a VM reads from its metadata server, as text. Like Compute Engine's, the
        server refuses requests without Metadata-Flavor: Google or with X-Forwarded-For
        (a proxy passing a request on)."""
        if headers.get("metadata-flavor") != "Google" or "x-forwarded-for" in headers:
            refusal = "Missing Metadata-Flavor:Google header (or X-Forwarded-For given)."
            return 403, MetadataValue(refusal)
        with self._lock:
            if (project, zone, name) not in self._vms:
                return 404, MetadataValue(f"instance {name} is not known")
        if path == "instance/network-interfaces/0/ip":
            return 200, MetadataValue(self.internal_ip)
        return 200, MetadataValue(json.dumps(_token()), "application/json")

    def _oauth_token(self, headers: dict[str, str], body: bytes) -> Reply:
        """An access token for a service account key's signed JWT, as Google's token
        endpoint gives one: the assertion must be an RS256 JWT of a key registered in
        `service_account_keys`, for this endpoint, not expired, asking for a scope."""
        form = {name: values[-1] for name, values in parse_qs(body.decode()).items()}
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, _oauth_error("invalid_request", "not a form")
        if form.get("grant_type") != JWT_GRANT:
            return 400, _oauth_error("unsupported_grant_type", "Invalid grant_type")
        problem = self._check_assertion(form.get("assertion", ""))
        if problem:
            return 400, _oauth_error("invalid_grant", problem)
        return 200, _token()

    def _check_assertion(self, assertion: str) -> str | None:
        """Why a JWT assertion is refused, or None."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            header_part, claims_part, signature_part = assertion.split(".")
            header = json.loads(_unbase64(header_part))
            claims = json.loads(_unbase64(claims_part))
            signature = _unbase64(signature_part)
        except ValueError:
            return "Invalid JWT: not three base64url JSON parts"
        if header.get("alg") != "RS256":
            return "Invalid JWT: alg must be RS256"
        key = self.service_account_keys.get(claims.get("iss", ""))
        if key is None:
            return f"Invalid JWT: no key of service account {claims.get('iss')!r}"
        try:
            signed = f"{header_part}.{claims_part}".encode()
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        if claims.get("aud") != TOKEN_AUDIENCE:
            return f"Invalid JWT: aud must be {TOKEN_AUDIENCE}, not {claims.get('aud')!r}"
        if not claims.get("scope") or float(claims.get("exp", 0)) < time.time():
            return "Invalid JWT: no scope, or expired"
        return None

    def _operation(self, project: str, zone: str, name: str, *, wait: bool) -> Reply:
        with self._lock:
            operation = self._operations.get((project, zone, name))
            if operation is None:
                return _not_found(f"projects/{project}/zones/{zone}/operations/{name}")
            if wait:
                self._lock.wait_for(lambda: operation["status"] == "DONE", timeout=_WAIT_S)
            return 200, copy.deepcopy(operation)

    # Helpers (the _new_*, _finish and _work ones run with the lock held) ------------------

    def _new_vm(self, key: Key, body: Json) -> _Vm:
        project, zone, name = key
        instance_id = str(next(self._ids))
        resource = copy.deepcopy(body)
        machine_type = str(resource.get("machineType", "")).rsplit("/", 1)[-1]
        for index, interface in enumerate(resource.get("networkInterfaces", [])):
            interface.update(name=f"nic{index}", networkIP="127.0.0.1")
        resource.update(
            kind="compute#instance",
            id=instance_id,
            status="PROVISIONING",
            zone=f"{_SELF}/projects/{project}/zones/{zone}",
            machineType=f"{_SELF}/projects/{project}/zones/{zone}/machineTypes/{machine_type}",
            selfLink=f"{_SELF}/projects/{project}/zones/{zone}/instances/{name}",
            creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime()),
        )
        directory = self._root / project / zone / f"{name}-{instance_id}"
        return _Vm(key, resource, directory)

    def _new_operation(self, target: Key, kind: str) -> Json:
        project, zone, name = target
        operation_name = f"operation-{next(self._ids)}"
        operation: Json = {
            "kind": "compute#operation",
            "id": operation_name.removeprefix("operation-"),
            "name": operation_name,
            "zone": f"{_SELF}/projects/{project}/zones/{zone}",
            "operationType": kind,
            "targetLink": f"{_SELF}/projects/{project}/zones/{zone}/instances/{name}",
            "status": "RUNNING",
            "progress": 0,
            "selfLink": f"{_SELF}/projects/{project}/zones/{zone}/operations/{operation_name}",
        }
        self._operations[(project, zone, operation_name)] = operation
        return operation

    def _finish(self, operation: Json, failure: Json | None = None) -> None:
        operation.update(status="DONE", progress=100, **(failure or {}))
        self._lock.notify_all()

    def _work(self, target: Any, *args: Any) -> None:
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

    def _stop(self, vm: _Vm) -> None:
        """Stop the VM's whole process group: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:
            process, vm.process = vm.process, None
        if process is None:
            return
        group = process.pid
        for signum, wait_s in ((signal.SIGTERM, self.stop_grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signum)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                process.poll()  # reap the script itself, so it leaves the group
                if not any(_group_members(group)):
                    break
                time.sleep(0.01)
        process.wait()


def _not_found(what: str) -> Reply:
    return api_error(404, "notFound", f"The resource '{what}' was not found")


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

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FakeComputeApi.requests` instead."""
