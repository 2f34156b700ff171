"""Instance resources of the fake Compute Engine API: the rules an insert, setMetadata and
setLabels must meet, and the shape the API gives an instance.

An instance needs an RFC 1035 name, machineType, disks and networkInterfaces. Metadata keys
match [a-zA-Z0-9-_]{1,128}, each once, values at most 256 KiB, keys and values under 512 KB
in all. Label keys match [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63}, at most 64 labels
(the international characters Compute Engine also takes are not modelled). A network
interface has at most one access config, of type ONE_TO_ONE_NAT.

Scheduling, as the API reference and the Spot VM guide have it: provisioningModel is
STANDARD (the default) or SPOT; a spot VM cannot restart automatically nor live-migrate
(automaticRestart true or onHostMaintenance MIGRATE is refused), and is stopped (the
default) or deleted when preempted, as its instanceTerminationAction says; a standard VM
takes no termination action (it needs maxRunDuration, not modelled) and cannot be
preemptible. Left out, they are filled in as Compute Engine fills them: MIGRATE and
automatic restart for a standard VM, TERMINATE and none for a spot one. Not modelled:
preemptible VMs (the older kind), FLEX_START and RESERVATION_BOUND, maxRunDuration.
"""

from __future__ import annotations

import copy
import re

from tests.fakes.compute_replies import (
    NAME,
    SELF,
    Json,
    Reply,
    fingerprint,
    invalid,
    required,
    timestamp,
)

_METADATA_KEY = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def insert_problem(body: Json) -> Reply | None:
    """Why Compute Engine would refuse this insert body, or None."""
    name = body.get("name", "")
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        return invalid("resource.name", name, f"Must be a match of regex '{NAME}'")
    for needed in ("machineType", "disks", "networkInterfaces"):
        if not body.get(needed):
            return required(f"resource.{needed}")
    return (
        metadata_problem(body.get("metadata", {}).get("items", []), "resource.metadata")
        or labels_problem(body.get("labels", {}), "resource.labels")
        or _interfaces_problem(body["networkInterfaces"])
        or _scheduling_problem(body.get("scheduling", {}))
    )


def _scheduling_problem(scheduling: Json) -> Reply | None:
    """Why Compute Engine would refuse these scheduling options (see module doc)."""
    field = "resource.scheduling"
    model = scheduling.get("provisioningModel", "STANDARD")
    if model not in ("STANDARD", "SPOT"):
        return invalid(f"{field}.provisioningModel", model, "Must be STANDARD or SPOT.")
    maintenance = scheduling.get("onHostMaintenance")
    if maintenance not in (None, "MIGRATE", "TERMINATE"):
        return invalid(f"{field}.onHostMaintenance", maintenance, "Must be MIGRATE or TERMINATE.")
    action = scheduling.get("instanceTerminationAction")
    if action not in (None, "STOP", "DELETE"):
        return invalid(f"{field}.instanceTerminationAction", action, "Must be STOP or DELETE.")
    if model == "SPOT":
        if scheduling.get("automaticRestart") is True:
            return invalid(
                f"{field}.automaticRestart", "true", "Spot VMs cannot be restarted automatically."
            )
        if maintenance == "MIGRATE":
            return invalid(
                f"{field}.onHostMaintenance",
                maintenance,
                "Spot VMs cannot live migrate; their onHostMaintenance must be TERMINATE.",
            )
        return None
    if action is not None:
        return invalid(
            f"{field}.instanceTerminationAction",
            action,
            "A termination action needs provisioningModel SPOT or a maxRunDuration.",
        )
    if scheduling.get("preemptible") is True:
        return invalid(
            f"{field}.preemptible",
            "true",
            "A preemptible VM cannot have provisioningModel STANDARD.",
        )
    return None


def filled_scheduling(scheduling: Json) -> Json:
    """An accepted instance's scheduling, with what Compute Engine fills in."""
    if scheduling.get("provisioningModel") == "SPOT":
        defaults: Json = {
            "onHostMaintenance": "TERMINATE",
            "automaticRestart": False,
            "instanceTerminationAction": "STOP",
        }
    else:
        defaults = {"onHostMaintenance": "MIGRATE", "automaticRestart": True}
    return {"provisioningModel": "STANDARD", "preemptible": False, **defaults, **scheduling}


def metadata_problem(items: list[Json], field: str) -> Reply | None:
    keys = [item.get("key", "") for item in items]
    values = [str(item.get("value", "")).encode() for item in items]
    for index, key in enumerate(keys):
        if not _METADATA_KEY.fullmatch(key):
            return invalid(f"{field}.items[{index}].key", key, "Must match [a-zA-Z0-9-_]{1,128}")
        if len(values[index]) > 256 * 1024:
            return invalid(f"{field}.items[{index}].value", "...", "Values are at most 256 KiB.")
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        return invalid(field, duplicate, "Metadata has duplicate keys.")
    if sum(map(len, keys)) + sum(map(len, values)) >= 512 * 1024:
        return invalid(field, "...", "The total size of all keys and values must be under 512 KB.")
    return None


def labels_problem(labels: dict[str, str], field: str) -> Reply | None:
    if len(labels) > 64:
        return invalid(field, len(labels), "At most 64 labels.")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            return invalid(f"{field}.{key}", key, f"Keys must match {_LABEL_KEY.pattern}")
        if not _LABEL_VALUE.fullmatch(value):
            return invalid(f"{field}.{key}", value, f"Values must match {_LABEL_VALUE.pattern}")
    return None


def _interfaces_problem(interfaces: list[Json]) -> Reply | None:
    for index, interface in enumerate(interfaces):
        configs = interface.get("accessConfigs", [])
        field = f"resource.networkInterfaces[{index}].accessConfigs"
        if len(configs) > 1:
            return invalid(field, configs, "Only one access config per interface is supported.")
        if configs and configs[0].get("type", "ONE_TO_ONE_NAT") != "ONE_TO_ONE_NAT":
            return invalid(f"{field}[0].type", configs[0]["type"], "Must be ONE_TO_ONE_NAT.")
    return None


def metadata(items: list[Json]) -> Json:
    """An instance's metadata, with the fingerprint of its items."""
    shaped: Json = {"kind": "compute#metadata", "fingerprint": fingerprint(items)}
    if items:
        shaped["items"] = copy.deepcopy(items)
    return shaped


def new_instance(
    body: Json, project: str, zone: str, instance_id: str, internal_ip: str, external_ip: str
) -> Json:
    """The instance an (accepted) insert body makes, PROVISIONING."""
    resource = copy.deepcopy(body)
    machine_type = str(resource["machineType"]).rsplit("/", 1)[-1]
    for index, interface in enumerate(resource["networkInterfaces"]):
        interface.update(kind="compute#networkInterface", name=f"nic{index}")
        interface["networkIP"] = internal_ip
        for config in interface.get("accessConfigs", []):
            config.setdefault("type", "ONE_TO_ONE_NAT")
            config.setdefault("name", "External NAT")
            config.setdefault("networkTier", "PREMIUM")
            config.update(kind="compute#accessConfig", natIP=external_ip)
    labels = resource.setdefault("labels", {})
    resource.update(
        kind="compute#instance",
        id=instance_id,
        status="PROVISIONING",
        zone=f"{SELF}/projects/{project}/zones/{zone}",
        machineType=f"{SELF}/projects/{project}/zones/{zone}/machineTypes/{machine_type}",
        metadata=metadata(resource.get("metadata", {}).get("items", [])),
        scheduling=filled_scheduling(resource.get("scheduling", {})),
        labelFingerprint=fingerprint(labels),
        selfLink=f"{SELF}/projects/{project}/zones/{zone}/instances/{body['name']}",
        creationTimestamp=timestamp(),
    )
    return resource
