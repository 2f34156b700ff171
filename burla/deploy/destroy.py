"""`burla destroy`: remove what `burla deploy` made for a cluster, found by its label.

VMs (main_service's first, so it starts no more nodes), firewall rules, the registry,
the service account and its roles go at once. The cluster's data (its documents in
Firestore, its objects in the bucket, and the bucket if deploy made it) go only when
`delete_data` allows. The APIs stay enabled and the Firestore database stays: other
things in the project may use them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from burla.core.errors import BackendError, ConflictError, NotFoundError
from burla.deploy import vm_steps
from burla.deploy.data_steps import made_by_deploy
from burla.deploy.google import GoogleClients, call, result
from burla.deploy.options import CLUSTER_LABEL, DeployOptions

FIRESTORE_ROOT = "burla"
"""The collection under which each cluster's Store lives (FirestoreStore's root)."""
Say = Callable[[str], None]


def destroy(
    options: DeployOptions,
    clients: GoogleClients,
    delete_data: Callable[[str], bool],
    say: Say,
) -> list[str]:
    """Remove the cluster (see module doc); what was removed. `delete_data` is asked,
    with a description of the data, whether it may be deleted."""
    removed: list[str] = []
    removed += _remove_vms(options, clients, say)
    removed += _remove_firewalls(options, clients, say)
    removed += _remove_registry(options, clients, say)
    data = f"documents under {FIRESTORE_ROOT}/{options.cluster} in Firestore and objects under"
    data += f" gs://{options.bucket}/{options.cluster}/"
    if delete_data(data):
        removed += _remove_data(options, clients, say)
    else:
        say(f"kept the cluster's data: {data}")
    removed += _remove_account(options, clients, say)
    return removed


def _remove_vms(options: DeployOptions, clients: GoogleClients, say: Say) -> list[str]:
    """main_service's VM first (stopping, it deletes its nodes itself), then what is left."""
    removed = []
    for name in sorted(_vms(options, clients), key=lambda name: name != options.main_vm):
        say(f"deleting VM {name}")
        if _delete_vm(options, clients, name):
            removed.append(f"VM {name}")
    return removed


def _vms(options: DeployOptions, clients: GoogleClients) -> list[str]:
    found = call(
        "list the cluster's VMs",
        clients.instances.list,
        request={
            "project": options.project,
            "zone": options.zone_name,
            "filter": f'labels.{CLUSTER_LABEL} = "{options.cluster}"',
        },
    )
    return [instance.name for instance in found]


def _delete_vm(options: DeployOptions, clients: GoogleClients, name: str) -> bool:
    """Delete a VM and wait until it is gone; False if it was gone already. One that is
    being deleted already (by main_service, as it stopped) is waited for."""
    where = {"project": options.project, "zone": options.zone_name, "instance": name}
    try:
        operation = call(f"delete VM {name}", clients.instances.delete_unary, **where)
    except NotFoundError:
        return False
    except BackendError as error:
        if not _not_ready(error.__cause__):
            raise
        deadline = time.monotonic() + vm_steps.OPERATION_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                call(f"read VM {name}", clients.instances.get, **where)
            except NotFoundError:
                return True
            time.sleep(1.0)
        raise
    vm_steps.wait_for(clients, operation, options.zone_name, f"delete VM {name}")
    return True


def _not_ready(error: BaseException | None) -> bool:
    """Whether Compute Engine refused because the VM is busy (being deleted already)."""
    from google.api_core import exceptions as google_errors

    if not isinstance(error, google_errors.BadRequest):
        return False
    return any(e.get("reason") == "resourceNotReady" for e in error.errors if isinstance(e, dict))


def _remove_firewalls(options: DeployOptions, clients: GoogleClients, say: Say) -> list[str]:
    removed = []
    for step in (
        vm_steps.main_firewall(clients, options),
        vm_steps.internal_firewall(clients, options),
    ):
        try:
            rule = call(
                f"read firewall rule {step.name}",
                clients.firewalls.get,
                project=options.project,
                firewall=step.name,
            )
        except NotFoundError:
            continue
        if rule.description != vm_steps.description(options):
            say(f"left firewall rule {step.name}: burla deploy did not make it")
            continue
        say(f"deleting firewall rule {step.name}")
        operation = call(
            f"delete firewall rule {step.name}",
            clients.firewalls.delete_unary,
            project=options.project,
            firewall=step.name,
        )
        vm_steps.wait_for(clients, operation, None, f"delete firewall rule {step.name}")
        removed.append(f"firewall rule {step.name}")
    return removed


def _remove_registry(options: DeployOptions, clients: GoogleClients, say: Say) -> list[str]:
    name = (
        f"projects/{options.project}/locations/{options.region}/repositories/{options.repository}"
    )
    try:
        repository = call(
            f"read repository {options.registry}", clients.repositories.get_repository, name=name
        )
    except NotFoundError:
        return []
    if dict(repository.labels).get(CLUSTER_LABEL) != options.cluster:
        say(f"left registry {options.registry}: not labelled as the cluster's")
        return []
    say(f"deleting registry {options.registry} and its images")
    operation = call(
        f"delete repository {options.registry}", clients.repositories.delete_repository, name=name
    )
    result(f"delete repository {options.registry}", operation)
    return [f"registry {options.registry}"]


def _remove_data(options: DeployOptions, clients: GoogleClients, say: Say) -> list[str]:
    removed = []
    from google.cloud import firestore

    database = firestore.Client(project=options.project, credentials=_credentials(clients))
    say(f"deleting the cluster's documents in Firestore ({FIRESTORE_ROOT}/{options.cluster})")
    document = database.collection(FIRESTORE_ROOT).document(options.cluster)
    count = call("delete the cluster's documents", database.recursive_delete, document)
    removed.append(f"{count} Firestore documents")
    bucket = call(f"read bucket {options.bucket}", clients.storage.lookup_bucket, options.bucket)
    if bucket is None:
        return removed
    deploys = made_by_deploy(clients, options)
    prefix = f"{options.cluster}/"
    blobs = list(call("list the cluster's objects", bucket.list_blobs, prefix=prefix))
    say(f"deleting {len(blobs)} objects under gs://{options.bucket}/{prefix}")
    for blob in blobs:
        with contextlib.suppress(NotFoundError):
            call(f"delete {blob.name}", blob.delete)
    removed.append(f"{len(blobs)} objects in gs://{options.bucket}")
    if not deploys:
        say(f"left bucket {options.bucket}: it was there before burla deploy")
    elif any(True for _ in call("list the bucket", bucket.list_blobs, max_results=1)):
        say(f"left bucket {options.bucket}: it holds objects of others")
    else:
        call(f"delete bucket {options.bucket}", bucket.delete)
        removed.append(f"bucket {options.bucket}")
    return removed


def _remove_account(options: DeployOptions, clients: GoogleClients, say: Say) -> list[str]:
    member = f"serviceAccount:{options.account_email}"
    for attempt in range(3):
        policy = call(
            "read the project's roles",
            clients.projects.get_iam_policy,
            resource=f"projects/{options.project}",
        )
        bindings = [(b.role, [m for m in b.members if m != member]) for b in policy.bindings]
        del policy.bindings[:]
        for role, members in bindings:
            if members:
                policy.bindings.add(role=role, members=members)
        try:
            call(
                "take the cluster account's roles back",
                clients.projects.set_iam_policy,
                request={"resource": f"projects/{options.project}", "policy": policy},
            )
            break
        except ConflictError:
            if attempt == 2:
                raise
    name = f"projects/{options.project}/serviceAccounts/{options.account_email}"
    try:
        call(f"delete {options.account_email}", clients.accounts.delete_service_account, name=name)
    except NotFoundError:
        return []
    say(f"deleted service account {options.account_email} and its roles")
    return [f"service account {options.account_email}"]


def _credentials(clients: GoogleClients) -> Any:
    """Firestore's emulator (FIRESTORE_EMULATOR_HOST) takes none; Google takes the
    deployer's."""
    return None if clients.endpoints.any else clients.credentials
