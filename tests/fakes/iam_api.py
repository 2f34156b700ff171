"""FakeIamApi: the IAM Admin API's service accounts and their allow policies, served over gRPC
on 127.0.0.1 to google-cloud-iam's IAMClient.

Clients reach it with `IAMClient(transport=IAMGrpcTransport(channel=grpc.insecure_channel(
api.target)))`; a transport given a channel asks for no credentials. It serves these methods of
`google.iam.admin.v1.IAM`, for the projects it is configured with (`projects`):

    CreateServiceAccount  name "projects/P", account_id, service_account{display_name,
                          description}: the id is 6-30 characters of [a-z]([-a-z0-9]*[a-z0-9]);
                          the email is ID@P.iam.gserviceaccount.com; unique_id (and
                          oauth2_client_id) is a 21-digit number never given twice; ALREADY_EXISTS
                          (with a google.rpc.ResourceInfo detail) when the id is taken.
    GetServiceAccount     name "projects/P/serviceAccounts/ACCOUNT", ACCOUNT an email or a
    DeleteServiceAccount  unique_id; P may be "-" (inferred from the account).
    PatchServiceAccount   update_mask of display_name and/or description (required).
    ListServiceAccounts   name "projects/P", page_size (default 20, at most 100), page_token.
    GetIamPolicy          resource "projects/P/serviceAccounts/ACCOUNT", requested version 0, 1
    SetIamPolicy          or 3. A set with an etag other than the policy's current one is
                          ABORTED; a set without one overwrites. Versions other than 0, 1 and 3,
                          conditions below version 3, bindings without members, role names that
                          are not roles/X, projects/P/roles/X or organizations/O/roles/X,
                          members not of the documented principal forms, and `serviceAccount:`
                          members of this fake's projects that do not exist are INVALID_ARGUMENT.
                          The update_mask may name only bindings and etag (its default).

Errors carry the status codes and, where Google's text is known, the messages the real API
gives: an unknown project is NOT_FOUND "Requested entity was not found."; a missing account is
NOT_FOUND "Service account NAME does not exist.", except PERMISSION_DENIED when it is named by
email under the "-" wildcard and for the policy methods, as the API documents. Deleting an
account keeps its unique_id from reuse and turns its `serviceAccount:` members in the policies
held here into `deleted:serviceAccount:EMAIL?uid=UNIQUE_ID`, as IAM does. Every other method of
the service answers UNIMPLEMENTED.

For tests it records every call (`requests`), makes the next calls fail with a transient error
(`fail_next`: the UNAVAILABLE, INTERNAL and DEADLINE_EXCEEDED that IAM's retry guide says to
retry, or a request quota's RESOURCE_EXHAUSTED), and answers `exists(email)` for stand-ins of
other APIs whose policies name service accounts.

Not modelled: authentication and permissions (every caller may do everything); project
numbers in names; disabled accounts, undelete, keys, signing, roles and the remaining methods;
eventual consistency (a new account is visible at once); quotas (100 accounts a project);
whether a role exists or may be granted on a service account; whether `serviceAccount:`
members of other projects or of Google-managed domains exist; merging of bindings that repeat a
role; the version 1 view of a policy with conditions (it is always answered as stored).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud.iam_admin_v1.types import iam
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import any_pb2, empty_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICE = "google.iam.admin.v1.IAM"
EMAIL_DOMAIN = "iam.gserviceaccount.com"
TRANSIENT_ERRORS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "The service is currently unavailable.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' "
        "of service 'iam.googleapis.com'."
    ),
    grpc.StatusCode.INTERNAL: "Internal error encountered.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Deadline expired before operation could complete.",
}
"""Transient errors, with Google's text: those IAM's retry guide says to retry (HTTP 500, 503,
504) and a request quota's 429."""
EMPTY_POLICY_ETAG = b"\x00\x20\x01"
"""The etag ("ACAB" in JSON) of a policy that was never set."""
CONCURRENT_CHANGE = (
    "There were concurrent policy changes. "
    "Please retry the whole read-modify-write with exponential backoff."
)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

_PROJECT_NAME = re.compile(r"projects/(?P<project>[^/]+)")
_ACCOUNT_NAME = re.compile(r"projects/(?P<project>[^/]+)/serviceAccounts/(?P<account>[^/]+)")
_ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_ROLE = re.compile(r"((projects|organizations)/[^/]+/)?roles/[A-Za-z0-9_.]+")
_EMAIL = r"[^\s@:?]+@[^\s@:?]+"
_MEMBER = re.compile(
    rf"allUsers|allAuthenticatedUsers"
    rf"|(user|group|serviceAccount):{_EMAIL}"
    rf"|deleted:(user|group|serviceAccount):{_EMAIL}\?uid=\d+"
    rf"|domain:[a-z0-9.-]+\.[a-z]+"
    rf"|principal(Set)?://\S+"
)
_POLICY_FIELDS = {"bindings", "etag"}
_PATCHABLE_FIELDS = {"display_name", "description"}


class IamError(Exception):
    """A refusal: the gRPC status code and message the IAM API answers with, and its details."""

    def __init__(self, code: grpc.StatusCode, message: str, *details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def status(self) -> grpc.Status:
        """As a gRPC status whose google.rpc.Status detail api_core unpacks."""
        packed = []
        for detail in self.details:
            wrapper = any_pb2.Any()
            wrapper.Pack(detail)
            packed.append(wrapper)
        rich = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        return rpc_status.to_status(rich)


@dataclass(frozen=True)
class Received:
    """One call the fake received: the RPC's name and the resource it named."""

    method: str
    resource: str


@dataclass(frozen=True)
class _Account:
    project: str
    account_id: str
    unique_id: str
    display_name: str
    description: str

    @property
    def email(self) -> str:
        return f"{self.account_id}@{self.project}.{EMAIL_DOMAIN}"

    @property
    def name(self) -> str:
        return f"projects/{self.project}/serviceAccounts/{self.email}"

    def resource(self) -> iam.ServiceAccount:
        return iam.ServiceAccount(
            name=self.name,
            project_id=self.project,
            unique_id=self.unique_id,
            email=self.email,
            display_name=self.display_name,
            description=self.description,
            oauth2_client_id=self.unique_id,
        )


@dataclass(frozen=True)
class _Fault:
    code: grpc.StatusCode
    method: str | None


class FakeIamApi:
    """The fake API (see module doc); `start` serves it on a free 127.0.0.1 port.

    `projects` are the project ids that exist; tests may add to it, and `reset` restores it.
    """

    def __init__(self, projects: Iterable[str]) -> None:
        self._configured_projects = frozenset(projects)
        self.projects: set[str] = set(self._configured_projects)
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        """By email."""
        self._policies: dict[str, policy_pb2.Policy] = {}
        """By the email of the account they are on; an account without one has never had one."""
        self._faults: list[_Fault] = []
        self._unique_ids = itertools.count(100_000_000_000_000_000_001)
        self._etags = itertools.count(1)
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._port: int | None = None
        self.requests: list[Received] = []
        """Every call received, failed ones included."""

    # Running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._executor = futures.ThreadPoolExecutor(max_workers=4)
        self._server = grpc.server(self._executor)
        self._server.add_generic_rpc_handlers((self._handlers(),))
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        """host:port, as grpc.insecure_channel takes it."""
        assert self._port is not None, "start the fake first"
        return f"127.0.0.1:{self._port}"

    def close(self) -> None:
        """Stop serving at once, cancelling calls under way, and free the port."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def reset(self) -> None:
        """Forget every account, policy, queued fault and recorded call; restore `projects`."""
        with self._lock:
            self.projects = set(self._configured_projects)
            self._accounts.clear()
            self._policies.clear()
            self._faults.clear()
            self.requests.clear()

    # Test controls ---------------------------------------------------------------------

    def fail_next(
        self,
        times: int = 1,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        *,
        method: str | None = None,
    ) -> None:
        """Fail the next `times` calls (of `method` only, when given, e.g. "GetIamPolicy") with
        a transient error, changing nothing."""
        if code not in TRANSIENT_ERRORS:
            raise ValueError(f"{code} is not a transient error IAM documents: {TRANSIENT_ERRORS}")
        with self._lock:
            self._faults.extend(_Fault(code, method) for _ in range(times))

    def exists(self, email: str) -> bool:
        """True while a service account with this email exists."""
        with self._lock:
            return email in self._accounts

    # The API ---------------------------------------------------------------------------

    def create_service_account(
        self, request: iam.CreateServiceAccountRequest
    ) -> iam.ServiceAccount:
        account_id = request.account_id
        if not 6 <= len(account_id) <= 30:
            raise _invalid(
                f'The account ID "{account_id}" does not have a length between 6 and 30.'
            )
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise _invalid(f"{account_id} does not match [a-z][a-z\\d\\-]*[a-z\\d].")
        given = request.service_account
        _check_texts(given.display_name, given.description)
        with self._lock:
            project = self._project(request.name)
            email = f"{account_id}@{project}.{EMAIL_DOMAIN}"
            if email in self._accounts:
                raise IamError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Service account {account_id} already exists within project "
                    f"projects/{project}.",
                    error_details_pb2.ResourceInfo(resource_name=self._accounts[email].name),
                )
            unique_id = str(next(self._unique_ids))
            account = _Account(
                project, account_id, unique_id, given.display_name, given.description
            )
            self._accounts[email] = account
            return account.resource()

    def get_service_account(self, request: iam.GetServiceAccountRequest) -> iam.ServiceAccount:
        with self._lock:
            return self._find(request.name, "iam.serviceAccounts.get").resource()

    def patch_service_account(self, request: iam.PatchServiceAccountRequest) -> iam.ServiceAccount:
        paths = set(request.update_mask.paths)
        if not paths or not paths <= _PATCHABLE_FIELDS:
            raise _invalid(
                f"update_mask must name display_name and/or description, not {sorted(paths)}."
            )
        given = request.service_account
        _check_texts(given.display_name, given.description)
        with self._lock:
            account = self._find(given.name, "iam.serviceAccounts.update")
            changes = {path: getattr(given, path) for path in paths}
            account = dataclasses.replace(account, **changes)
            self._accounts[account.email] = account
            return account.resource()

    def delete_service_account(self, request: iam.DeleteServiceAccountRequest) -> None:
        with self._lock:
            account = self._find(request.name, "iam.serviceAccounts.delete")
            del self._accounts[account.email]
            self._policies.pop(account.email, None)
            member = f"serviceAccount:{account.email}"
            tombstone = f"deleted:{member}?uid={account.unique_id}"
            for policy in self._policies.values():
                for binding in policy.bindings:
                    if member in binding.members:
                        kept = [m for m in binding.members if m != member]
                        del binding.members[:]
                        binding.members.extend([*kept, tombstone])

    def list_service_accounts(
        self, request: iam.ListServiceAccountsRequest
    ) -> iam.ListServiceAccountsResponse:
        if request.page_size < 0:
            raise _invalid(f"page_size must not be negative, not {request.page_size}.")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _email_after(request.page_token)
        with self._lock:
            project = self._project(request.name)
            emails = sorted(
                email
                for email, account in self._accounts.items()
                if account.project == project and email > after
            )
            page = [self._accounts[email].resource() for email in emails[:page_size]]
        reply = iam.ListServiceAccountsResponse(accounts=page)
        if len(emails) > page_size:
            reply.next_page_token = base64.urlsafe_b64encode(
                emails[page_size - 1].encode()
            ).decode()
        return reply

    def get_iam_policy(self, request: iam_policy_pb2.GetIamPolicyRequest) -> policy_pb2.Policy:
        _check_version(request.options.requested_policy_version)
        with self._lock:
            account = self._find(request.resource, "iam.serviceAccounts.getIamPolicy", hide=True)
            return self._policy(account.email)

    def set_iam_policy(self, request: iam_policy_pb2.SetIamPolicyRequest) -> policy_pb2.Policy:
        paths = set(request.update_mask.paths)
        if not paths <= _POLICY_FIELDS:
            raise _invalid(f"update_mask may name only bindings and etag, not {sorted(paths)}.")
        given = request.policy
        with self._lock:
            account = self._find(request.resource, "iam.serviceAccounts.setIamPolicy", hide=True)
            if given.etag and given.etag != self._policy(account.email).etag:
                raise IamError(grpc.StatusCode.ABORTED, CONCURRENT_CHANGE)
            _check_version(given.version)
            for binding in given.bindings:
                self._check_binding(binding, given.version)
            stored = policy_pb2.Policy(
                version=3 if any(b.HasField("condition") for b in given.bindings) else 1,
                bindings=given.bindings,
                etag=b"\x07\x05" + next(self._etags).to_bytes(6, "big"),
            )
            self._policies[account.email] = stored
            return self._policy(account.email)

    # Helpers (those that read state run with the lock held) ---------------------------------

    def _project(self, name: str) -> str:
        found = _PROJECT_NAME.fullmatch(name)
        if found is None:
            raise _invalid(f'The project name "{name}" is not of the form projects/PROJECT_ID.')
        if found.group("project") not in self.projects:
            raise IamError(grpc.StatusCode.NOT_FOUND, "Requested entity was not found.")
        return found.group("project")

    def _find(self, name: str, permission: str, *, hide: bool = False) -> _Account:
        """The account a name gives, or the error IAM gives for it. IAM hides a missing account
        behind PERMISSION_DENIED for the policy methods (`hide`) and when it is named by email
        under the "-" wildcard; otherwise it is NOT_FOUND."""
        found = _ACCOUNT_NAME.fullmatch(name)
        if found is None:
            raise _invalid(
                f'The service account name "{name}" is not of the form '
                "projects/PROJECT_ID/serviceAccounts/EMAIL_OR_UNIQUE_ID."
            )
        project, key = found.group("project"), found.group("account")
        matches = [
            account
            for account in self._accounts.values()
            if key in (account.email, account.unique_id) and project in ("-", account.project)
        ]
        if matches:
            return matches[0]
        if hide or (project == "-" and "@" in key):
            raise IamError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission {permission} is required to perform this operation on service "
                f"account {name}.",
            )
        raise IamError(grpc.StatusCode.NOT_FOUND, f"Service account {name} does not exist.")

    def _policy(self, email: str) -> policy_pb2.Policy:
        """A copy of the account's policy, or of the empty one it has until one is set."""
        reply = policy_pb2.Policy(etag=EMPTY_POLICY_ETAG)
        if email in self._policies:
            reply.CopyFrom(self._policies[email])
        return reply

    def _check_binding(self, binding: policy_pb2.Binding, version: int) -> None:
        if not _ROLE.fullmatch(binding.role):
            raise _invalid(f"Role ({binding.role}) does not exist in the resource's hierarchy.")
        if not binding.members:
            raise _invalid(f"The binding of role {binding.role} has no members.")
        if binding.HasField("condition") and version != 3:
            raise _invalid(
                f"The binding of role {binding.role} has a condition, which needs policy "
                f"version 3, not {version}."
            )
        for member in binding.members:
            if not _MEMBER.fullmatch(member):
                raise _invalid('Policy members must be of the form "<type>:<value>".')
            email = member.removeprefix("serviceAccount:")
            project = email.partition("@")[2].removesuffix(f".{EMAIL_DOMAIN}")
            known = email != member and project in self.projects
            if known and email not in self._accounts:
                raise _invalid(f"Service account {email} does not exist.")

    # Serving ---------------------------------------------------------------------------

    def _handlers(self) -> grpc.GenericRpcHandler:
        def rpc(
            method: str,
            call: Callable[[Any], Any],
            read: Callable[[bytes], Any],
            write: Callable[[Any], bytes],
            resource: Callable[[Any], str],
        ) -> tuple[str, grpc.RpcMethodHandler]:
            def behavior(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    self._receive(Received(method, resource(request)))
                    reply = call(request)
                    return empty_pb2.Empty() if reply is None else reply
                except IamError as error:
                    context.abort_with_status(error.status())

            handler = grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=read, response_serializer=write
            )
            return method, handler

        account = iam.ServiceAccount.serialize
        handlers = [
            rpc(
                "CreateServiceAccount",
                self.create_service_account,
                iam.CreateServiceAccountRequest.deserialize,
                account,
                lambda request: request.name,
            ),
            rpc(
                "GetServiceAccount",
                self.get_service_account,
                iam.GetServiceAccountRequest.deserialize,
                account,
                lambda request: request.name,
            ),
            rpc(
                "PatchServiceAccount",
                self.patch_service_account,
                iam.PatchServiceAccountRequest.deserialize,
                account,
                lambda request: request.service_account.name,
            ),
            rpc(
                "DeleteServiceAccount",
                self.delete_service_account,
                iam.DeleteServiceAccountRequest.deserialize,
                empty_pb2.Empty.SerializeToString,
                lambda request: request.name,
            ),
            rpc(
                "ListServiceAccounts",
                self.list_service_accounts,
                iam.ListServiceAccountsRequest.deserialize,
                iam.ListServiceAccountsResponse.serialize,
                lambda request: request.name,
            ),
            rpc(
                "GetIamPolicy",
                self.get_iam_policy,
                iam_policy_pb2.GetIamPolicyRequest.FromString,
                policy_pb2.Policy.SerializeToString,
                lambda request: request.resource,
            ),
            rpc(
                "SetIamPolicy",
                self.set_iam_policy,
                iam_policy_pb2.SetIamPolicyRequest.FromString,
                policy_pb2.Policy.SerializeToString,
                lambda request: request.resource,
            ),
        ]
        return grpc.method_handlers_generic_handler(SERVICE, dict(handlers))

    def _receive(self, call: Received) -> None:
        """Record a call, then fail it if a fault is queued for it."""
        with self._lock:
            self.requests.append(call)
            for fault in self._faults:
                if fault.method in (None, call.method):
                    self._faults.remove(fault)
                    raise IamError(fault.code, TRANSIENT_ERRORS[fault.code])


def _invalid(message: str) -> IamError:
    return IamError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _check_texts(display_name: str, description: str) -> None:
    """The documented limits: 100 UTF-8 bytes of display name, 256 of description."""
    if len(display_name.encode()) > 100:
        raise _invalid("The display name is longer than 100 UTF-8 bytes.")
    if len(description.encode()) > 256:
        raise _invalid("The description is longer than 256 UTF-8 bytes.")


def _check_version(version: int) -> None:
    if version not in (0, 1, 3):
        raise _invalid(f"Invalid policy version {version}: it must be 0, 1 or 3.")


def _email_after(page_token: str) -> str:
    """The email a page token says the previous page ended with ("" for the first page)."""
    if not page_token:
        return ""
    try:
        email = base64.b64decode(page_token, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        email = ""
    if "@" not in email:
        raise _invalid(f"Invalid page token {page_token!r}.")
    return email
