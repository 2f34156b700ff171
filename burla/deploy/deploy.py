"""`burla deploy`: plan the cluster's resources, make what is missing or different, wait
until main_service answers over HTTPS, and write the client's settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from burla.core.errors import BackendError, NotFoundError
from burla.deploy import access_steps, data_steps, vm_steps
from burla.deploy.google import GoogleClients, call
from burla.deploy.main_vm import FINGERPRINT_ATTRIBUTE
from burla.deploy.options import DeployOptions, GoogleEndpoints
from burla.deploy.plan import Planned, Step, carry_out, make_plan
from burla.deploy.wheel import Wheel, build_wheel
from burla.release import build_id

READY_TIMEOUT_S = 1200.0
"""A VM's first boot installs Debian's packages, burla, and builds the default images."""
POLL_S = 1.0


@dataclass(frozen=True)
class Deployed:
    """How clients reach the cluster, as written to their settings."""

    url: str
    cert_sha256: str
    token: str
    changed: int
    """How many resources this run made or changed (0: all was as asked)."""


def cluster_steps(clients: GoogleClients, options: DeployOptions, wheel: Wheel) -> list[Step]:
    """Every resource of the cluster, in the order they are made."""
    return [
        access_steps.ProjectStep(clients),
        access_steps.ApisStep(clients),
        access_steps.ServiceAccountStep(clients, options),
        access_steps.project_roles(clients, options),
        access_steps.account_roles(clients, options),
        data_steps.DatabaseStep(clients, options),
        data_steps.BucketStep(clients, options),
        data_steps.SoftwareStep(clients, options, wheel),
        data_steps.RegistryStep(clients, options),
        vm_steps.main_firewall(clients, options),
        vm_steps.internal_firewall(clients, options),
        vm_steps.MainVmStep(clients, options, wheel, build_id()),
    ]


def plan_deploy(
    options: DeployOptions, endpoints: GoogleEndpoints | None = None
) -> tuple[GoogleClients, list[Planned]]:
    """What deploy would do, read from Google without changing anything."""
    clients = GoogleClients(options.project, endpoints)
    return clients, make_plan(cluster_steps(clients, options, build_wheel()))


def deploy(
    options: DeployOptions,
    config_path: Path,
    say: Callable[[str], None],
    endpoints: GoogleEndpoints | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Deployed:
    """Make the cluster as `options` ask (see module doc); the client's settings go to
    `config_path`."""
    clients, plan = plan_deploy(options, endpoints)
    changed = carry_out(plan, say)
    software = next(p.step for p in plan if isinstance(p.step, data_steps.SoftwareStep))
    token = software.admin_token()
    say(f"waiting for main_service on {options.main_vm} to answer")
    url, fingerprint = _wait_until_serving(clients, options, token, ready_timeout_s)
    from burla.client.config_file import update_config

    update_config(
        config_path,
        {"backend": "gcp", "main_url": url, "main_cert_sha256": fingerprint, "token": token},
        {"project": options.project, "zone": options.zone_name, "cluster": options.cluster},
    )
    return Deployed(url, fingerprint, token, changed)


def _wait_until_serving(
    clients: GoogleClients, options: DeployOptions, token: str, timeout_s: float
) -> tuple[str, str]:
    """main_service's URL and certificate fingerprint, once it answers to its token."""
    from burla.client.http import HttpError, HttpPool

    deadline = time.monotonic() + timeout_s
    last = "its VM has not published its certificate yet"
    while time.monotonic() < deadline:
        found = _published(clients, options)
        if found is not None:
            url, fingerprint = found
            pool = HttpPool(url, {"authorization": f"Bearer {token}"}, 10.0, fingerprint)
            try:
                answer = pool.request("GET", "/me")
                if answer.status_code == 200:
                    return url, fingerprint
                last = f"it answered {answer.status_code}: {answer.text[:200]}"
            except HttpError as error:
                last = str(error)
            except ConnectionError as error:  # its certificate could not be fetched yet
                last = str(error)
            finally:
                pool.close()
        time.sleep(POLL_S)
    raise BackendError(
        f"main_service on VM {options.main_vm} did not answer within {timeout_s:.0f} s ({last}); "
        f"see its log: gcloud compute ssh {options.main_vm} --zone {options.zone_name} -- "
        "sudo journalctl -u burla-main -u google-startup-scripts; then run burla deploy again"
    )


def _published(clients: GoogleClients, options: DeployOptions) -> tuple[str, str] | None:
    """main_service's address and fingerprint, once its VM has published them."""
    from google.cloud import compute_v1

    project, zone, name = options.project, options.zone_name, options.main_vm
    asked = compute_v1.GetGuestAttributesInstanceRequest(
        project=project, zone=zone, instance=name, variable_key=FINGERPRINT_ATTRIBUTE
    )
    try:
        attribute = call(f"read VM {name}", clients.instances.get_guest_attributes, request=asked)
    except NotFoundError:  # not published yet
        return None
    instance = call(
        f"read VM {name}", clients.instances.get, project=project, zone=zone, instance=name
    )
    configs = instance.network_interfaces[0].access_configs
    address = configs[0].nat_i_p if configs and configs[0].nat_i_p else None
    if address is None or not attribute.variable_value:
        return None
    return f"https://{address}:{options.port}", attribute.variable_value.strip()
