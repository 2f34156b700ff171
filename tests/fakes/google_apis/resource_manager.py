"""FakeResourceManager: the Cloud Resource Manager API v3 (cloudresourcemanager.googleapis.com),
a project and its IAM policy, for google-cloud-resource-manager's REST transport.

Served, for a project P named by id or number (see rest_server.py for what every
stand-in does):

    GET  /v3/projects/P                 projects.get
    POST /v3/projects/P:getIamPolicy    projects.getIamPolicy
    POST /v3/projects/P:setIamPolicy    projects.setIamPolicy

As Google's reference has it: a Project is `projects/NUMBER` with its `projectId`,
`state` ACTIVE, `displayName`, times, `etag` and `labels`. An unknown project gets 403
"Permission 'resourcemanager.projects.get' denied on resource
'//cloudresourcemanager.googleapis.com/projects/P' (or it may not exist)." (the
permission of the method called). A policy has a version, bindings and an etag.
setIamPolicy with an etag that is not the policy's current one fails with 409 ABORTED
"There were concurrent policy changes. Please retry the whole read-modify-write with
exponential backoff. ..."; without an etag it overwrites. With no updateMask it sets
`bindings` and `etag` (Google's default mask); `auditConfigs` only when the mask names
them. Each binding's role must be `roles/X`, `projects/P/roles/X` or
`organizations/N/roles/X` (else 400 "Role R is not supported for this resource.");
each member is `type:value` (else 400 'Policy members must be of the form
"<type>:<value>".') of a known type (else 400 "The member M is of an unknown type.
Please set a valid type prefix for the member."); allUsers and allAuthenticatedUsers are
refused, as projects do not take them; a `serviceAccount:` member must be a service
account that exists (else 400 "Service account E does not exist."). Bindings with a
condition need policy version 3, and so does reading a policy that has some (the
requested version must be 0, 1 or 3). A stored policy is normalized as Google returns
it: one binding per role and condition, members sorted without duplicates, bindings
without members dropped; its version is 3 if it has conditions, else 1.

Whether a service account exists is asked of `service_account_exists(email)`, since
service accounts live in the IAM stand-in; by default every well-formed address exists.
A new project's policy makes `owner` (a member) roles/owner.

Not modelled: creating, listing, searching, moving, updating or deleting projects and
their operations; organizations and folders (no project has a parent); whether a role
exists and may be granted on a project (any well-formed role is accepted), and the
invitation an owner outside the organization must accept; the `_withcond_` role names
Google gives when a policy with conditions is read at version 1 (refused here instead);
testIamPermissions. The exact wording of the refusal of a malformed email address is
this stand-in's.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from collections.abc import Callable, Mapping

from google.cloud.resourcemanager_v3 import types
from google.iam.v1 import iam_policy_pb2, policy_pb2

from tests.fakes.google_apis.rest_server import (
    ApiError,
    Call,
    Json,
    RestStandIn,
    Route,
    permission_denied,
    timestamp,
)

_ROLE = re.compile(r"(roles|projects/[^/]+/roles|organizations/\d+/roles)/[A-Za-z0-9_.]+")
_EMAIL = re.compile(r"[^@\s:]+@[^@\s:]+\.[^@\s:]+")
_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
_EMAIL_TYPES = {"user", "serviceAccount", "group"}
_OTHER_TYPES = {"domain", "deleted", "principal", "principalSet"}
_PUBLIC = {"allUsers", "allAuthenticatedUsers"}
_VERSIONS = {0, 1, 3}
_DEFAULT_MASK = ["bindings", "etag"]


def _any_address(email: str) -> bool:
    return True


class FakeResourceManager(RestStandIn):
    """The Resource Manager API (see module doc); state is kept per project id."""

    service_name = "cloudresourcemanager.googleapis.com"

    def __init__(
        self,
        projects: Mapping[str, int],
        *,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        owner: str = "user:owner@example.com",
        service_account_exists: Callable[[str], bool] = _any_address,
    ) -> None:
        self.labels = {project: dict((labels or {}).get(project, {})) for project in projects}
        """Each project's labels, by id."""
        self.owner = owner
        self.service_account_exists = service_account_exists
        self._created = timestamp()
        self._policies: dict[str, Json] = {}
        self._etags = itertools.count(1)
        super().__init__(projects)
        self._forget()

    def _route_table(self) -> list[Route]:
        project = "/v3/projects/{project}"
        return [
            Route("GET", project, "projects.get", self._get, types.Project.pb()),
            Route(
                "POST",
                project + ":getIamPolicy",
                "projects.getIamPolicy",
                self._get_policy,
                policy_pb2.Policy,
                iam_policy_pb2.GetIamPolicyRequest,
            ),
            Route(
                "POST",
                project + ":setIamPolicy",
                "projects.setIamPolicy",
                self._set_policy,
                policy_pb2.Policy,
                iam_policy_pb2.SetIamPolicyRequest,
            ),
        ]

    def _forget(self) -> None:
        self._policies = {
            project: self._stored([{"role": "roles/owner", "members": [self.owner]}], [])
            for project in self.projects
        }

    # Test controls ---------------------------------------------------------------------

    def policy(self, project: str) -> Json:
        """A project's policy (by id), as getIamPolicy at version 3 gives it."""
        with self._lock:
            return copy.deepcopy(self._policies[project])

    # The API ---------------------------------------------------------------------------

    def _get(self, call: Call) -> Json:
        project = self._known(call, "resourcemanager.projects.get")
        return {
            "name": f"projects/{self.projects[project]}",
            "projectId": project,
            "state": "ACTIVE",
            "displayName": project,
            "createTime": self._created,
            "updateTime": self._created,
            "etag": f'W/"{self.projects[project]:x}"',
            "labels": dict(self.labels[project]),
        }

    def _get_policy(self, call: Call) -> Json:
        project = self._known(call, "resourcemanager.projects.getIamPolicy")
        requested = int(call.body.get("options", {}).get("requestedPolicyVersion", 0))
        if requested not in _VERSIONS:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid requested policy version {requested}: use 1 or 3.",
            )
        policy = self._policies[project]
        if policy["version"] == 3 and requested < 3:
            raise ApiError(
                "INVALID_ARGUMENT",
                "The policy has conditional role bindings: request policy version 3.",
            )
        return copy.deepcopy(policy)

    def _set_policy(self, call: Call) -> Json:
        project = self._known(call, "resourcemanager.projects.setIamPolicy")
        policy: Json = call.body.get("policy", {})
        current = self._policies[project]
        sent_etag = policy.get("etag")
        if sent_etag and sent_etag != current["etag"]:
            raise ApiError(
                "ABORTED",
                "There were concurrent policy changes. Please retry the whole "
                "read-modify-write with exponential backoff. The request's ETag "
                f"'{sent_etag}' did not match the current policy's ETag '{current['etag']}'.",
            )
        version = int(policy.get("version", 0))
        if version not in _VERSIONS:
            raise ApiError("INVALID_ARGUMENT", f"Invalid policy version {version}: use 1 or 3.")
        bindings: list[Json] = policy.get("bindings", [])
        for binding in bindings:
            self._check(binding, version)
        mask = call.body.get("updateMask")
        paths = mask.split(",") if mask else _DEFAULT_MASK
        audits = policy.get("auditConfigs", []) if _named(paths, "auditConfigs") else None
        self._policies[project] = self._stored(
            bindings, current.get("auditConfigs", []) if audits is None else audits
        )
        return copy.deepcopy(self._policies[project])

    # Helpers (run with the lock held) --------------------------------------------------

    def _known(self, call: Call, permission: str) -> str:
        project = self._project_id(call.params["project"])
        if project is None:
            resource = f"//cloudresourcemanager.googleapis.com/projects/{call.params['project']}"
            raise permission_denied(permission, resource, self.service_name)
        return project

    def _check(self, binding: Json, version: int) -> None:
        role = binding.get("role", "")
        if not _ROLE.fullmatch(role):
            raise ApiError("INVALID_ARGUMENT", f"Role {role} is not supported for this resource.")
        if "condition" in binding and version != 3:
            raise ApiError(
                "INVALID_ARGUMENT",
                "Conditional role bindings require policy version 3; set the policy's "
                "version to 3.",
            )
        for member in binding.get("members", []):
            self._check_member(member)

    def _check_member(self, member: str) -> None:
        if member in _PUBLIC:
            raise ApiError("INVALID_ARGUMENT", "Request contains an invalid argument.")
        kind, colon, value = member.partition(":")
        if not colon or not value:
            raise ApiError(
                "INVALID_ARGUMENT", 'Policy members must be of the form "<type>:<value>".'
            )
        if kind not in _EMAIL_TYPES | _OTHER_TYPES:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"The member {member} is of an unknown type. Please set a valid type prefix "
                "for the member.",
            )
        malformed = (kind in _EMAIL_TYPES and not _EMAIL.fullmatch(value)) or (
            kind == "domain" and not _DOMAIN.fullmatch(value)
        )
        if malformed:
            raise ApiError("INVALID_ARGUMENT", f"Invalid member {member}: malformed {kind}.")
        if kind == "serviceAccount" and not self.service_account_exists(value):
            raise ApiError("INVALID_ARGUMENT", f"Service account {value} does not exist.")

    def _stored(self, bindings: list[Json], audit_configs: list[Json]) -> Json:
        """A policy as Google keeps it: bindings merged per role and condition, with a
        fresh etag (the first byte 0x07, as Google's policy etags have it)."""
        merged: dict[tuple[str, str], set[str]] = {}
        for binding in bindings:
            key = binding["role"], json.dumps(binding.get("condition"), sort_keys=True)
            merged.setdefault(key, set()).update(binding.get("members", []))
        stored: list[Json] = []
        for (role, condition), members in sorted(merged.items()):
            if members:
                entry: Json = {"role": role, "members": sorted(members)}
                if condition != "null":
                    entry["condition"] = json.loads(condition)
                stored.append(entry)
        etag = base64.b64encode(b"\x07" + next(self._etags).to_bytes(7, "big")).decode()
        policy: Json = {
            "version": 3 if any("condition" in entry for entry in stored) else 1,
            "bindings": stored,
            "etag": etag,
        }
        if audit_configs:
            policy["auditConfigs"] = audit_configs
        return policy


def _named(paths: list[str], field: str) -> bool:
    """Whether a field mask names a field, in camelCase or snake_case."""
    snake = re.sub(r"([A-Z])", lambda found: "_" + found.group(1).lower(), field)
    return any(path.strip() in (field, snake) for path in paths)
