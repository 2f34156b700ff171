"""The metadata server of a fake VM: what `computeMetadata/v1/...` answers, read from its
instance, as Compute Engine's metadata server does.

Served (GET, as text unless said):

    instance/name, instance/id, instance/zone (projects/NUMBER/zones/ZONE)
    instance/attributes/              the instance's custom metadata keys, one a line
    instance/attributes/KEY           a custom metadata value (404 when absent)
    instance/network-interfaces/N/ip  the VM's internal IP
    instance/network-interfaces/N/access-configs/M/external-ip
                                      the access config's natIP (404 without one)
    instance/service-accounts/default/token   an access token, as JSON
    instance/guest-attributes/NS/KEY  a guest attribute the VM wrote (404 when absent)
    project/project-id, project/numeric-project-id

A request without `Metadata-Flavor: Google`, or with `X-Forwarded-For` (a proxy passing it
on), is refused 403; guest attributes answer 403 unless the instance's metadata sets
enable-guest-attributes TRUE. Not modelled: `?recursive=true`, `?alt=json`, `?wait_for_change`,
project-wide metadata, and the other keys of the real server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tests.fakes.compute_replies import Json, MetadataValue, Reply
from tests.fakes.oauth_token import token


@dataclass(frozen=True)
class VmFacts:
    """What a VM's metadata server knows of it, read under the API's lock."""

    project: str
    project_number: str
    zone: str
    resource: Json
    guest_attributes: dict[str, str]
    internal_ip: str


def refusal(headers: dict[str, str]) -> Reply | None:
    """Compute Engine's refusal of a request that is not a VM's own, or None."""
    if headers.get("metadata-flavor") != "Google" or "x-forwarded-for" in headers:
        text = "Missing Metadata-Flavor:Google header (or X-Forwarded-For given)."
        return 403, MetadataValue(text)
    return None


def guest_attributes_enabled(resource: Json) -> bool:
    items = resource.get("metadata", {}).get("items", [])
    return {"key": "enable-guest-attributes", "value": "TRUE"} in items


GUEST_ATTRIBUTES_OFF: Reply = 403, MetadataValue("Guest attributes endpoint access is disabled.")


def read(path: str, vm: VmFacts) -> Reply:
    """The metadata server's answer to a GET of `path` (under computeMetadata/v1/)."""
    resource = vm.resource
    items = resource.get("metadata", {}).get("items", [])
    attributes = {item["key"]: item.get("value", "") for item in items}
    simple = {
        "instance/name": resource["name"],
        "instance/id": resource["id"],
        "instance/zone": f"projects/{vm.project_number}/zones/{vm.zone}",
        "instance/attributes/": "".join(f"{key}\n" for key in attributes),
        "project/project-id": vm.project,
        "project/numeric-project-id": vm.project_number,
        "instance/service-accounts/default/token": json.dumps(token()),
    }
    if path in simple:
        kind = "application/json" if path.endswith("/token") else "application/text"
        return 200, MetadataValue(simple[path], kind)
    value: str | None = None
    if path.startswith("instance/attributes/"):
        value = attributes.get(path.removeprefix("instance/attributes/"))
    elif path.startswith("instance/guest-attributes/"):
        if not guest_attributes_enabled(resource):
            return GUEST_ATTRIBUTES_OFF
        value = vm.guest_attributes.get(path.removeprefix("instance/guest-attributes/"))
    elif found := re.fullmatch(r"instance/network-interfaces/(\d+)/(.+)", path):
        value = _interface_value(resource, int(found[1]), found[2], vm.internal_ip)
    if value is None:
        return 404, MetadataValue(f"{path} is not defined for instance {resource['name']}")
    return 200, MetadataValue(value)


def _interface_value(resource: Json, index: int, rest: str, internal_ip: str) -> str | None:
    interfaces = resource.get("networkInterfaces", [])
    if index >= len(interfaces):
        return None
    if rest == "ip":
        return internal_ip
    found = re.fullmatch(r"access-configs/(\d+)/external-ip", rest)
    configs = interfaces[index].get("accessConfigs", [])
    if found is None or int(found[1]) >= len(configs):
        return None
    nat_ip = configs[int(found[1])].get("natIP")
    return str(nat_ip) if nat_ip else None
