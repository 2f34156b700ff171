"""GceComputeProvider: a cluster's machines as Compute Engine VMs.

A node is the VM `<cluster>-<node id>` (see GceSettings), labelled with its cluster, node
id and node type; `list` asks Compute Engine only for VMs with this cluster's label, and
`get` and `delete` leave alone a VM of that name that is labelled for another cluster.

The VM's startup script (gce_boot) starts node_service and publishes its port as a guest
attribute. Compute Engine's instance status maps onto MachineStatus:

    PROVISIONING, STAGING                  BOOTING
    RUNNING, port not yet published        BOOTING
    RUNNING, port published                RUNNING at <internal IP>:<port>
    STOPPING, SUSPENDING, PENDING_STOP     STOPPING
    TERMINATED, STOPPED, SUSPENDED,        FAILED (the node's processes are gone)
    REPAIRING

A spot VM that Compute Engine preempts is stopped (gce_boot.scheduling): it shows
STOPPING, then TERMINATED. Such a VM, when this provider did not delete it, is looked up
in the zone's `compute.instances.preempted` operations (one list call for all of them, at
most once per `list`), and its Machine says `preempted`.

google-cloud-compute is synchronous, so every request runs in a worker thread. `create`
and `delete` return once Compute Engine's operation is done, polling it through a
ZoneOperationsClient on the same endpoint and credentials as the instances client.
Failures become burla errors as gce_errors describes.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from burla.backends.gcp.gce_boot import (
    CLUSTER_LABEL,
    NODE_ID_LABEL,
    NODE_TYPE_LABEL,
    PORT_ATTRIBUTE,
    check_boot,
    instance_resource,
)
from burla.backends.gcp.gce_errors import from_api_error, from_operation
from burla.backends.gcp.gce_settings import INSTANCE_NAME, GceSettings
from burla.core.errors import BackendError, TransientBackendError
from burla.core.protocols import BootSpec, Machine, MachineStatus

try:
    from google.api_core import exceptions as google_errors
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import Credentials
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import compute_v1
except ImportError as missing:
    raise ImportError(
        f"{missing}: burla's Compute Engine provider needs the gcp extra; "
        "pip install 'burla-cluster[gcp]'"
    ) from missing

T = TypeVar("T")

_BOOTING = frozenset({"PROVISIONING", "STAGING"})
_STOPPING = frozenset({"STOPPING", "SUSPENDING", "PENDING_STOP"})
_GONE = frozenset({"TERMINATED", "STOPPED", "SUSPENDED", "REPAIRING"})
_PREEMPTED = 'operationType = "compute.instances.preempted"'
"""The zone operations that record preemptions (their targetId is the instance's id)."""
_LIST_PAGE = 500
"""Instances per list page; Compute Engine returns at most 500."""


def machine_status(instance_status: str, listening: bool) -> MachineStatus:
    """The MachineStatus of a VM in `instance_status` (see module doc). A status Compute
    Engine adds later counts as BOOTING: it does not make a live node look lost."""
    if instance_status == "RUNNING":
        return MachineStatus.RUNNING if listening else MachineStatus.BOOTING
    if instance_status in _STOPPING:
        return MachineStatus.STOPPING
    if instance_status in _GONE:
        return MachineStatus.FAILED
    return MachineStatus.BOOTING


class GceComputeProvider:
    """The ComputeProvider protocol on Compute Engine (see module doc).

    `client_options` and `credentials` go to google-cloud-compute's clients as they are,
    e.g. `{"api_endpoint": "http://127.0.0.1:PORT"}` and AnonymousCredentials for a local
    stand-in of the API; by default the clients find the application's credentials.
    Call `aclose` when done.
    """

    def __init__(
        self,
        settings: GceSettings,
        *,
        client_options: ClientOptions | Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self._settings = settings
        options = dict(client_options) if isinstance(client_options, Mapping) else client_options
        try:
            self._instances = compute_v1.InstancesClient(
                credentials=credentials, client_options=options
            )
            self._operations = compute_v1.ZoneOperationsClient(
                credentials=credentials, client_options=options
            )
        except GoogleAuthError as error:
            raise BackendError(
                f"no Google Cloud credentials for Compute Engine ({error}); run "
                "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
            ) from error
        self._ports: dict[int, str] = {}
        """Published node_service ports by instance id (ids are never reused)."""
        self._preempted: set[int] = set()
        """Ids of instances Compute Engine preempted."""
        self._deleted: set[int] = set()
        """Ids of instances this provider deleted (stopping because it asked)."""

    async def create(self, boot: BootSpec) -> Machine:
        check_boot(self._settings, boot)
        action = (
            f"create {boot.node_type.name} machine {boot.node_id!r} of cluster "
            f"{self._settings.cluster!r}"
        )
        operation = await self._call(
            action,
            self._instances.insert_unary,
            project=self._settings.project,
            zone=self._settings.zone,
            instance_resource=instance_resource(self._settings, boot),
        )
        await self._finish(operation, action)
        machine = await self.get(boot.node_id)
        if machine is None:
            raise BackendError(
                f"machine {boot.node_id!r} was created but is gone already; something else "
                f"deleted VM {self._settings.instance_name(boot.node_id)!r}"
            )
        return machine

    async def get(self, node_id: str) -> Machine | None:
        name = self._settings.instance_name(node_id)
        if not INSTANCE_NAME.fullmatch(name):
            return None
        instance = await self._call(f"get machine {node_id!r}", self._get_instance, name)
        if instance is None or not self._is_node(instance, node_id):
            return None
        await self._find_preemptions([instance])
        return await self._describe(instance)

    async def list(self) -> builtins.list[Machine]:
        instances = await self._call(
            f"list the machines of cluster {self._settings.cluster!r}", self._list_instances
        )
        live = {instance.id for instance in instances}
        self._ports = {key: port for key, port in self._ports.items() if key in live}
        self._preempted &= live
        self._deleted &= live
        await self._find_preemptions(instances)
        machines = [
            await self._describe(instance)
            for instance in instances
            if self._is_node(instance, instance.labels.get(NODE_ID_LABEL, ""))
        ]
        return sorted(machines, key=lambda machine: machine.node_id)

    async def delete(self, node_id: str) -> bool:
        name = self._settings.instance_name(node_id)
        if not INSTANCE_NAME.fullmatch(name):
            return False
        action = f"delete machine {node_id!r} of cluster {self._settings.cluster!r}"
        instance = await self._call(action, self._get_instance, name)
        if instance is None or not self._is_node(instance, node_id):
            return False
        if instance.status == "RUNNING" or instance.status in _BOOTING:
            self._deleted.add(instance.id)  # it stops from now on because it was asked to
        else:
            await self._find_preemptions([instance])  # it stopped on its own: say why
        operation = await self._call(action, self._delete_instance, name)
        if operation is None:
            return False  # deleted by someone else in the meantime
        await self._finish(operation, action)
        self._ports.pop(instance.id, None)
        return True

    async def aclose(self) -> None:
        """Close the clients' connections. The VMs stay."""
        self._instances.transport.close()  # type: ignore[no-untyped-call]
        self._operations.transport.close()  # type: ignore[no-untyped-call]

    def _is_node(self, instance: compute_v1.Instance, node_id: str) -> bool:
        """True if `instance` is this cluster's VM for `node_id`."""
        labels = instance.labels
        return (
            bool(node_id)
            and labels.get(CLUSTER_LABEL) == self._settings.cluster
            and labels.get(NODE_ID_LABEL) == node_id
            and instance.name == self._settings.instance_name(node_id)
        )

    async def _describe(self, instance: compute_v1.Instance) -> Machine:
        node_id = instance.labels[NODE_ID_LABEL]
        node_type = instance.labels.get(NODE_TYPE_LABEL) or instance.machine_type.rsplit("/")[-1]
        interfaces = instance.network_interfaces
        ip = interfaces[0].network_i_p if interfaces else ""
        port = None
        if instance.status == "RUNNING" and ip:
            port = await self._published_port(instance)
        status = machine_status(instance.status, port is not None)
        address = f"{ip}:{port}" if status is MachineStatus.RUNNING else None
        return Machine(node_id, node_type, status, address, instance.id in self._preempted)

    async def _find_preemptions(self, instances: builtins.list[compute_v1.Instance]) -> None:
        """Learn which of `instances` that stop or stopped on their own, spot VMs this
        provider did not delete, Compute Engine preempted (one call for all of them)."""
        stopped = {
            instance.id
            for instance in instances
            if instance.scheduling.provisioning_model == "SPOT"
            and (instance.status in _STOPPING or instance.status in _GONE)
            and instance.id not in self._preempted
            and instance.id not in self._deleted
        }
        if stopped:
            action = f"read the preemptions of cluster {self._settings.cluster!r}'s spot VMs"
            self._preempted |= stopped & await self._call(action, self._preempted_ids)

    async def _published_port(self, instance: compute_v1.Instance) -> str | None:
        port = self._ports.get(instance.id)
        if port is None:
            action = f"read the node_service port of VM {instance.name!r}"
            port = await self._call(action, self._read_port, instance.name)
            if port is not None:
                self._ports[instance.id] = port
        return port

    async def _finish(self, operation: compute_v1.Operation, action: str) -> None:
        """Wait until `operation` is done; raise the burla error it finished with, if any."""
        done = compute_v1.Operation.Status.DONE
        delay = self._settings.first_poll_s
        with anyio.move_on_after(self._settings.operation_timeout_s):
            while operation.status != done:
                await anyio.sleep(delay)
                delay = min(2 * delay, self._settings.max_poll_s)
                operation = await self._call(
                    action,
                    self._operations.get,
                    project=self._settings.project,
                    zone=self._settings.zone,
                    operation=operation.name,
                )
        if operation.status != done:
            raise BackendError(
                f"could not {action}: Compute Engine's operation {operation.name} is not done "
                f"after {self._settings.operation_timeout_s:g} s; see `gcloud compute "
                f"operations describe {operation.name} --zone {self._settings.zone}`"
            )
        error = from_operation(operation, action, self._settings.project)
        if error is not None:
            raise error

    async def _call(self, action: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`method(*args, **kwargs)` in a worker thread, its failures as burla errors."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(method, *args, **kwargs))
        except google_errors.GoogleAPICallError as error:
            raise from_api_error(error, action, self._settings.project) from error
        except OSError as error:  # requests' connection errors: a reset, a timeout
            raise TransientBackendError(
                f"could not {action}: Compute Engine at {self._instances.api_endpoint} did not "
                f"answer ({error})"
            ) from error
        except GoogleAuthError as error:
            raise BackendError(
                f"could not {action}: Compute Engine at {self._instances.api_endpoint} could "
                f"not be reached or refused the credentials ({error}); check the network and "
                "the credentials"
            ) from error

    # Blocking requests, run in worker threads by _call.

    def _get_instance(self, name: str) -> compute_v1.Instance | None:
        return self._on_instance(self._instances.get, name)

    def _delete_instance(self, name: str) -> compute_v1.Operation | None:
        return self._on_instance(self._instances.delete_unary, name)

    def _on_instance(self, method: Callable[..., T], name: str) -> T | None:
        """`method` called on the VM `name` of this project and zone; None if there is none."""
        try:
            return method(project=self._settings.project, zone=self._settings.zone, instance=name)
        except google_errors.NotFound:
            return None

    def _list_instances(self) -> builtins.list[compute_v1.Instance]:
        request = compute_v1.ListInstancesRequest(
            project=self._settings.project,
            zone=self._settings.zone,
            filter=f'labels.{CLUSTER_LABEL} = "{self._settings.cluster}"',
            max_results=_LIST_PAGE,
        )
        return builtins.list(self._instances.list(request=request))

    def _preempted_ids(self) -> set[int]:
        request = compute_v1.ListZoneOperationsRequest(
            project=self._settings.project,
            zone=self._settings.zone,
            filter=_PREEMPTED,
            max_results=_LIST_PAGE,
        )
        return {operation.target_id for operation in self._operations.list(request=request)}

    def _read_port(self, name: str) -> str | None:
        try:
            attribute = self._instances.get_guest_attributes(
                request=compute_v1.GetGuestAttributesInstanceRequest(
                    project=self._settings.project,
                    zone=self._settings.zone,
                    instance=name,
                    variable_key=PORT_ATTRIBUTE,
                )
            )
        except google_errors.NotFound:
            return None  # not published yet
        port = attribute.variable_value.strip()
        return port if port.isdigit() else None
