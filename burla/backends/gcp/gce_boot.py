"""What a new Compute Engine VM is given: the instance resource and its startup script.

The startup script exports the node's environment, installs burla (and the Docker engine
when the workers run in containers), starts node_service with the node's identity in its
environment, and once node_service has written its address file publishes the port as
the guest attribute `burla/port`. The provider reads that attribute back, so a machine is
RUNNING exactly when its node_service listens, at the VM's internal IP and that port.
node_service's output goes to `node.log` in the node directory.
"""

from __future__ import annotations

import re
import shlex

from burla.backends.boot_env import check_boot_env, node_identity
from burla.backends.gcp.gce_settings import INSTANCE_NAME, LABEL_VALUE, GceSettings
from burla.core.errors import InvalidRequestError
from burla.core.models import NodeType
from burla.core.protocols import BootSpec

try:
    from google.cloud import compute_v1
except ImportError as missing:
    raise ImportError(
        f"{missing}: burla's Compute Engine provider needs the gcp extra; "
        "pip install 'burla-cluster[gcp]'"
    ) from missing

CLUSTER_LABEL = "burla-cluster"
NODE_ID_LABEL = "burla-node-id"
NODE_TYPE_LABEL = "burla-node-type"
PORT_ATTRIBUTE = "burla/port"
"""The guest attribute (namespace/key) where a VM publishes its node_service's port."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_boot(settings: GceSettings, boot: BootSpec) -> None:
    """Refuse, before anything is created, what Compute Engine or the script cannot take."""
    node_id, type_name = boot.node_id, boot.node_type.name
    if not LABEL_VALUE.fullmatch(node_id) or not INSTANCE_NAME.fullmatch(
        settings.instance_name(node_id)
    ):
        raise InvalidRequestError(
            f"node id {node_id!r} cannot name a Compute Engine VM: use lowercase letters, "
            f"digits and '-', ending with a letter or digit, and at most "
            f"{62 - len(settings.cluster)} characters (the VM is named "
            f"'{settings.cluster}-<node id>')"
        )
    if not INSTANCE_NAME.fullmatch(type_name):
        raise InvalidRequestError(
            f"node type {type_name!r} is not a Compute Engine machine type name; name node "
            "types after their machine type, e.g. 'n2-standard-96'"
        )
    bad_names = sorted(name for name in boot.env if not _ENV_NAME.fullmatch(name))
    if bad_names:
        raise InvalidRequestError(
            f"node {node_id!r}: {bad_names} cannot be environment variable names; use "
            "letters, digits and '_'"
        )
    check_boot_env(boot)


def startup_script(settings: GceSettings, boot: BootSpec) -> str:
    """The bash script the VM runs at boot (see module doc)."""
    # The node asks its metadata server for the VM's internal IP, unless told an address,
    # and keeps its Docker workers from that server (and so from the VM's credentials).
    environment = {
        **node_identity(boot),
        "BURLA_NODE_ADDRESS_FROM": "gce-metadata",
        "BURLA_GUARD_METADATA": "1",
        **boot.env,
    }
    exports = "\n".join(
        f"export {name}={shlex.quote(value)}" for name, value in environment.items()
    )
    node_dir = shlex.quote(settings.node_dir)
    node_command = shlex.join(settings.node_command)
    install = settings.install_command or ": burla is in the image"
    metadata = "${GCE_METADATA_HOST:-metadata.google.internal}"
    return f"""#!/bin/bash
# burla node {boot.node_id} of cluster {settings.cluster}
set -euo pipefail
{exports}
{install}
mkdir -p {node_dir}
BURLA_NODE_DIR="$(cd {node_dir} && pwd)"
export BURLA_NODE_DIR
rm -f "$BURLA_NODE_DIR/address"
{node_command} >>"$BURLA_NODE_DIR/node.log" 2>&1 &
node=$!
until [ -s "$BURLA_NODE_DIR/address" ]; do
  kill -0 "$node" 2>/dev/null || {{ wait "$node"; exit; }}
  sleep 0.05
done
address="$(cat "$BURLA_NODE_DIR/address")"
curl --silent --show-error --fail --request PUT --header 'Metadata-Flavor: Google' \\
  --data "${{address##*:}}" \\
  "http://{metadata}/computeMetadata/v1/instance/guest-attributes/{PORT_ATTRIBUTE}"
wait "$node"
"""


def scheduling(node_type: NodeType) -> compute_v1.Scheduling:
    """How Compute Engine runs a VM of `node_type`: a spot one as Google requires of spot
    VMs (no automatic restart, terminated for host maintenance) and stopped when preempted.

    Stopped, not deleted: a preempted VM stays listed as TERMINATED until main_service,
    having counted its node as preempted, deletes it (within a look at the machines, half
    a second; its boot disk is all that is billed meanwhile). A deleted VM would vanish
    like one deleted by hand, and could be told apart only by searching the zone's
    operations for every node that goes missing. burla never restarts a stopped VM."""
    if node_type.spot:
        return compute_v1.Scheduling(
            provisioning_model="SPOT",
            instance_termination_action="STOP",
            on_host_maintenance="TERMINATE",
            automatic_restart=False,
        )
    return compute_v1.Scheduling(
        provisioning_model="STANDARD",
        # GPUs cannot move to another host while running.
        on_host_maintenance="TERMINATE" if node_type.gpus else "MIGRATE",
        automatic_restart=True,
    )


def instance_resource(settings: GceSettings, boot: BootSpec) -> compute_v1.Instance:
    """The body of the insert request for `boot`'s VM."""
    zone = f"zones/{settings.zone}"
    access_configs = (
        [compute_v1.AccessConfig(name="external-nat", type_="ONE_TO_ONE_NAT")]
        if settings.external_ip
        else []
    )
    return compute_v1.Instance(
        name=settings.instance_name(boot.node_id),
        machine_type=f"{zone}/machineTypes/{boot.node_type.name}",
        labels={
            CLUSTER_LABEL: settings.cluster,
            NODE_ID_LABEL: boot.node_id,
            NODE_TYPE_LABEL: boot.node_type.name,
        },
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=settings.source_image,
                    disk_size_gb=settings.disk_size_gb,
                    disk_type=f"{zone}/diskTypes/pd-balanced",
                ),
            )
        ],
        network_interfaces=[
            compute_v1.NetworkInterface(network=settings.network, access_configs=access_configs)
        ],
        # The cluster's own firewall rule (burla deploy's) lets VMs of this tag talk.
        tags=compute_v1.Tags(items=[settings.cluster]),
        metadata=compute_v1.Metadata(
            items=[
                compute_v1.Items(key="startup-script", value=startup_script(settings, boot)),
                compute_v1.Items(key="enable-guest-attributes", value="TRUE"),
            ]
        ),
        scheduling=scheduling(boot.node_type),
        service_accounts=[
            compute_v1.ServiceAccount(
                email=settings.service_account,
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ],
    )
