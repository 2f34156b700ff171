"""Deploy's steps on Compute Engine: the cluster's firewall rules and main_service's VM."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from burla.core.errors import BackendError, ConflictError, NotFoundError
from burla.deploy import main_vm
from burla.deploy.google import GoogleClients, call
from burla.deploy.options import DeployOptions
from burla.deploy.plan import Check, OneResource
from burla.deploy.wheel import Wheel

OPERATION_TIMEOUT_S = 600.0


def wait_for(clients: GoogleClients, operation: Any, zone: str | None, action: str) -> None:
    """Wait until a Compute Engine operation is done (polled on the clients' own endpoint:
    the operation object would poll Google's); BackendError if it failed."""
    project = clients.project
    deadline = time.monotonic() + OPERATION_TIMEOUT_S
    while operation.status.name != "DONE":
        if time.monotonic() > deadline:
            raise BackendError(f"could not {action}: not done after {OPERATION_TIMEOUT_S:.0f} s")
        if zone is None:
            operation = call(
                action, clients.global_operations.wait, project=project, operation=operation.name
            )
        else:
            operation = call(
                action,
                clients.zone_operations.wait,
                project=project,
                zone=zone,
                operation=operation.name,
            )
    errors = [entry.message for entry in operation.error.errors]
    if errors:
        raise BackendError(f"could not {action}: {'; '.join(errors)}")


@dataclass
class FirewallStep(OneResource):
    """One firewall rule of the cluster's. Rules carry no labels: they are named
    `<cluster>-...` and their description names the cluster, which destroy checks."""

    clients: GoogleClients
    options: DeployOptions
    name: str
    ports: tuple[str, ...]
    """TCP ports, e.g. ("8443",); () for all."""
    source_ranges: tuple[str, ...] = ()
    source_tags: tuple[str, ...] = ()
    target_tag: str = ""
    kind: str = "firewall rule"
    needs: tuple[str, ...] = ("compute.googleapis.com",)

    def wanted(self) -> Any:
        from google.cloud import compute_v1

        return compute_v1.Firewall(
            name=self.name,
            description=description(self.options),
            network="global/networks/default",
            direction="INGRESS",
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=list(self.ports))],
            source_ranges=list(self.source_ranges),
            source_tags=list(self.source_tags),
            target_tags=[self.target_tag],
        )

    def check(self) -> Check:
        try:
            found = call(
                f"read firewall rule {self.name}",
                self.clients.firewalls.get,
                project=self.options.project,
                firewall=self.name,
            )
        except NotFoundError:
            return Check("missing", self._summary())
        wanted = self.wanted()
        same = (
            sorted(found.source_ranges) == sorted(wanted.source_ranges)
            and sorted(found.source_tags) == sorted(wanted.source_tags)
            and list(found.target_tags) == list(wanted.target_tags)
            and [(a.I_p_protocol, sorted(a.ports)) for a in found.allowed]
            == [(a.I_p_protocol, sorted(a.ports)) for a in wanted.allowed]
        )
        return Check("ok", self._summary()) if same else Check("differs", self._summary())

    def apply(self, check: Check) -> None:
        action = f"{'create' if check.state == 'missing' else 'update'} firewall rule {self.name}"
        firewalls = self.clients.firewalls
        if check.state == "missing":
            try:
                operation = call(
                    action,
                    firewalls.insert_unary,
                    project=self.options.project,
                    firewall_resource=self.wanted(),
                )
            except ConflictError:
                return
        else:
            operation = call(
                action,
                firewalls.patch_unary,
                project=self.options.project,
                firewall=self.name,
                firewall_resource=self.wanted(),
            )
        wait_for(self.clients, operation, None, action)

    def _summary(self) -> str:
        ports = ",".join(self.ports) or "all"
        sources = ", ".join(self.source_ranges or self.source_tags)
        return f"tcp:{ports} from {sources}"


def description(options: DeployOptions) -> str:
    return f"burla cluster {options.cluster}: made by burla deploy"


def main_firewall(clients: GoogleClients, options: DeployOptions) -> FirewallStep:
    """Clients reach main_service's port from the allowed addresses only."""
    return FirewallStep(
        clients,
        options,
        name=f"{options.cluster}-main",
        ports=(str(options.port),),
        source_ranges=options.allow,
        target_tag=options.main_tag,
    )


def internal_firewall(clients: GoogleClients, options: DeployOptions) -> FirewallStep:
    """The cluster's VMs reach each other on every TCP port: nodes call main_service,
    main_service dials each node's port."""
    return FirewallStep(
        clients,
        options,
        name=f"{options.cluster}-internal",
        ports=(),
        source_tags=(options.internal_tag,),
        target_tag=options.internal_tag,
    )


@dataclass
class MainVmStep(OneResource):
    """main_service's VM. What it runs is in its metadata: changed metadata is set and the
    VM restarted, which keeps its disk (and so the certificate's key)."""

    clients: GoogleClients
    options: DeployOptions
    wheel: Wheel
    build: str
    kind: str = "main_service VM"
    needs: tuple[str, ...] = ("compute.googleapis.com", "service account")
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.options.main_vm

    def metadata(self) -> dict[str, str]:
        options = self.options
        return {
            "startup-script": main_vm.startup_script(options, self.wheel.filename, self.build),
            "enable-guest-attributes": "TRUE",
            main_vm.CONFIG_KEY: main_vm.config_text(options),
            "burla-unit": main_vm.unit_text(options),
            "burla-node-install": main_vm.install_lines(options, self.wheel.filename, self.build),
        }

    def check(self) -> Check:
        found = self.instance()
        if found is None:
            return Check("missing", f"{self.options.main_machine_type} in {self.options.zone_name}")
        have = {item.key: item.value for item in found.metadata.items}
        changed = sorted(key for key, value in self.metadata().items() if have.get(key) != value)
        machine_type = found.machine_type.rsplit("/", 1)[-1]
        if machine_type != self.options.main_machine_type:
            raise BackendError(
                f"main_service's VM {self.name} is a {machine_type}, not the "
                f"{self.options.main_machine_type} asked for; burla deploy does not resize it "
                "(stop it and change its machine type in the console, or keep it)"
            )
        if changed:
            return Check("differs", f"{', '.join(changed)} changed; it restarts")
        return Check("ok", found.status)

    def instance(self) -> Any | None:
        try:
            return call(
                f"read VM {self.name}",
                self.clients.instances.get,
                project=self.options.project,
                zone=self.options.zone_name,
                instance=self.name,
            )
        except NotFoundError:
            return None

    def apply(self, check: Check) -> None:
        if check.state == "missing":
            self._create()
        else:
            self._update()

    def _create(self) -> None:
        from burla.deploy.main_vm_resource import main_instance

        action = f"create VM {self.name}"
        try:
            operation = call(
                action,
                self.clients.instances.insert_unary,
                project=self.options.project,
                zone=self.options.zone_name,
                instance_resource=main_instance(self.options, self.metadata()),
            )
        except ConflictError:
            return
        wait_for(self.clients, operation, self.options.zone_name, action)

    def _update(self) -> None:
        from google.cloud import compute_v1

        found = self.instance()
        assert found is not None
        zone, project = self.options.zone_name, self.options.project
        metadata = compute_v1.Metadata(
            fingerprint=found.metadata.fingerprint,
            items=[compute_v1.Items(key=k, value=v) for k, v in self.metadata().items()],
        )
        action = f"set the metadata of VM {self.name}"
        operation = call(
            action,
            self.clients.instances.set_metadata_unary,
            project=project,
            zone=zone,
            instance=self.name,
            metadata_resource=metadata,
        )
        wait_for(self.clients, operation, zone, action)
        action = f"restart VM {self.name}"
        operation = call(
            action,
            self.clients.instances.reset_unary,
            project=project,
            zone=zone,
            instance=self.name,
        )
        wait_for(self.clients, operation, zone, action)
