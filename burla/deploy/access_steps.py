"""Deploy's steps for who may do what: the project, its APIs, the cluster's service
account and the roles it holds."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.deploy.google import GoogleClients, call, exists, result
from burla.deploy.options import DeployOptions
from burla.deploy.plan import Check, OneResource

APIS = (
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
)
"""The APIs a cluster uses (IAM credentials: main_service signs URLs as its account)."""
PROJECT_ROLES = (
    "roles/datastore.user",
    "roles/storage.objectAdmin",
    "roles/compute.instanceAdmin.v1",
    "roles/artifactregistry.writer",
)
"""What the cluster's account may do in the project: its Store, blobs, VMs and images."""
ACCOUNT_ROLES = ("roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator")
"""What it may do as itself: give the nodes' VMs its identity, and sign URLs."""
Policy = Any
"""google.iam.v1.policy_pb2.Policy (a protobuf message, untyped)."""
ROLE_ATTEMPTS = 5
"""Policy writes lost to a concurrent change (ABORTED) are tried again from a fresh read."""


@dataclass
class ProjectStep(OneResource):
    """The project must exist and be reachable with the deployer's credentials."""

    clients: GoogleClients
    kind: str = "project"
    needs: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.clients.project

    def check(self) -> Check:
        try:
            found = call(
                f"read project {self.name}",
                self.clients.projects.get_project,
                name=f"projects/{self.name}",
            )
        except NotFoundError:
            raise InvalidRequestError(
                f"project {self.name!r} does not exist or your credentials cannot see it; "
                "check --project and `gcloud auth application-default login`"
            ) from None
        return Check("ok", f"{found.state.name.lower()}")

    def apply(self, check: Check) -> None:
        """Nothing: burla does not create projects."""


@dataclass
class ApisStep:
    clients: GoogleClients
    kind: str = "APIs"
    needs: tuple[str, ...] = ()
    name: str = ", ".join(api.removesuffix(".googleapis.com") for api in APIS)
    missing: list[str] = field(default_factory=list)

    @property
    def made(self) -> tuple[str, ...]:
        return tuple(self.missing)

    def check(self) -> Check:
        project = self.clients.project
        self.missing = [
            api
            for api in APIS
            if call(
                f"read whether {api} is enabled",
                self.clients.services.get_service,
                request={"name": f"projects/{project}/services/{api}"},
            ).state.name
            != "ENABLED"
        ]
        if not self.missing:
            return Check("ok", "all enabled")
        return Check("missing", f"enable {', '.join(self.missing)}")

    def apply(self, check: Check) -> None:
        operation = call(
            "enable the cluster's APIs",
            self.clients.services.batch_enable_services,
            request={"parent": f"projects/{self.clients.project}", "service_ids": self.missing},
        )
        result("enable the cluster's APIs", operation)


@dataclass
class ServiceAccountStep(OneResource):
    clients: GoogleClients
    options: DeployOptions
    kind: str = "service account"
    needs: tuple[str, ...] = ("iam.googleapis.com",)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.options.account_email

    def check(self) -> Check:
        found = exists(
            f"read service account {self.name}",
            self.clients.accounts.get_service_account,
            name=f"projects/{self.clients.project}/serviceAccounts/{self.name}",
        )
        return Check("ok" if found else "missing")

    def apply(self, check: Check) -> None:
        account = {
            "display_name": f"burla cluster {self.options.cluster}",
            "description": f"main_service and nodes of burla cluster {self.options.cluster}",
        }
        with contextlib.suppress(ConflictError):  # made by a deploy cut short after it asked
            call(
                f"create service account {self.name}",
                self.clients.accounts.create_service_account,
                request={
                    "name": f"projects/{self.clients.project}",
                    "account_id": self.options.account_id,
                    "service_account": account,
                },
            )


@dataclass
class RolesStep(OneResource):
    """Roles of the cluster's account on a resource whose policy the client reads and
    writes (the project, or the account itself)."""

    clients: GoogleClients
    options: DeployOptions
    kind: str
    name: str
    roles: tuple[str, ...]
    on_account: bool

    @property
    def needs(self) -> tuple[str, ...]:
        if self.on_account:
            return ("iam.googleapis.com", "service account")
        return ("cloudresourcemanager.googleapis.com",)

    def check(self) -> Check:
        lacking = self._lacking(self._policy())
        if not lacking:
            return Check("ok", f"{len(self.roles)} roles")
        return Check("missing", f"grant {', '.join(lacking)}")

    def apply(self, check: Check) -> None:
        for attempt in range(ROLE_ATTEMPTS):
            policy = self._policy()
            member = f"serviceAccount:{self.options.account_email}"
            for role in self._lacking(policy):
                binding = next((b for b in policy.bindings if b.role == role), None)
                if binding is None:
                    binding = policy.bindings.add(role=role)
                binding.members.append(member)
            try:
                self._write(policy)
                return
            except ConflictError:  # another change came between our read and write
                if attempt == ROLE_ATTEMPTS - 1:
                    raise

    def _lacking(self, policy: Policy) -> list[str]:
        member = f"serviceAccount:{self.options.account_email}"
        held = {binding.role for binding in policy.bindings if member in binding.members}
        return [role for role in self.roles if role not in held]

    def _policy(self) -> Policy:
        client = self.clients.accounts if self.on_account else self.clients.projects
        return call(
            f"read the roles on {self.name}", client.get_iam_policy, resource=self._resource
        )

    def _write(self, policy: Policy) -> None:
        client = self.clients.accounts if self.on_account else self.clients.projects
        call(
            f"grant roles on {self.name}",
            client.set_iam_policy,
            request={"resource": self._resource, "policy": policy},
        )

    @property
    def _resource(self) -> str:
        project = f"projects/{self.clients.project}"
        if self.on_account:
            return f"{project}/serviceAccounts/{self.options.account_email}"
        return project


def project_roles(clients: GoogleClients, options: DeployOptions) -> RolesStep:
    return RolesStep(
        clients, options, "project roles", options.project, PROJECT_ROLES, on_account=False
    )


def account_roles(clients: GoogleClients, options: DeployOptions) -> RolesStep:
    return RolesStep(
        clients, options, "account roles", options.account_email, ACCOUNT_ROLES, on_account=True
    )
