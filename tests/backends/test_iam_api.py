"""The fake IAM Admin API (tests/fakes/iam_api.py) through google-cloud-iam's own IAMClient:
service accounts, their policies and etags, the errors IAM documents, injected transient
errors, and a clean stop.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud.iam_admin_v1 import IAMClient
from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport
from google.cloud.iam_admin_v1.types import iam
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from google.type import expr_pb2

from tests.components.iam_api import IAM_PROJECT
from tests.fakes.iam_api import CONCURRENT_CHANGE, EMPTY_POLICY_ETAG, FakeIamApi

pytestmark = pytest.mark.integration

EMAIL_DOMAIN = f"{IAM_PROJECT}.iam.gserviceaccount.com"
ROLE = "roles/iam.serviceAccountUser"
USER = "user:alex@example.com"


@pytest.fixture
def api(iam_api: FakeIamApi) -> Iterator[FakeIamApi]:
    try:
        yield iam_api
    finally:
        iam_api.reset()


def client_of(api: FakeIamApi) -> tuple[IAMClient, grpc.Channel]:
    channel = grpc.insecure_channel(api.target)
    return IAMClient(transport=IAMGrpcTransport(channel=channel)), channel


@pytest.fixture
def client(api: FakeIamApi) -> Iterator[IAMClient]:
    iam_client, channel = client_of(api)
    try:
        yield iam_client
    finally:
        channel.close()


def create(client: IAMClient, account_id: str, project: str = IAM_PROJECT) -> iam.ServiceAccount:
    return client.create_service_account(
        name=f"projects/{project}",
        account_id=account_id,
        service_account=iam.ServiceAccount(display_name="Burla main", description="The cluster"),
    )


def set_policy(
    client: IAMClient, resource: str, *bindings: policy_pb2.Binding, etag: bytes = b""
) -> policy_pb2.Policy:
    policy = policy_pb2.Policy(bindings=bindings, etag=etag)
    return client.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=policy)
    )


# Service accounts ------------------------------------------------------------------------


def test_create_makes_the_email_from_the_id_and_gives_a_unique_id(client: IAMClient) -> None:
    account = create(client, "burla-main")
    again = create(client, "burla-node")

    assert account.email == f"burla-main@{EMAIL_DOMAIN}"
    assert account.name == f"projects/{IAM_PROJECT}/serviceAccounts/{account.email}"
    assert account.project_id == IAM_PROJECT
    assert (account.display_name, account.description) == ("Burla main", "The cluster")
    assert account.unique_id.isdigit()
    assert len(account.unique_id) == 21
    assert account.oauth2_client_id == account.unique_id
    assert again.unique_id != account.unique_id


def test_an_account_is_found_by_email_by_unique_id_and_under_the_wildcard(
    client: IAMClient, api: FakeIamApi
) -> None:
    account = create(client, "burla-main")

    names = [
        account.name,
        f"projects/{IAM_PROJECT}/serviceAccounts/{account.unique_id}",
        f"projects/-/serviceAccounts/{account.email}",
        f"projects/-/serviceAccounts/{account.unique_id}",
    ]
    assert [client.get_service_account(name=name) for name in names] == [account] * 4
    assert api.exists(account.email)
    assert not api.exists(f"burla-other@{EMAIL_DOMAIN}")


def test_list_pages_through_the_accounts_of_one_project(client: IAMClient, api: FakeIamApi) -> None:
    api.projects.add("other-project")
    made = {create(client, f"burla-node-{index}").email for index in range(5)}
    create(client, "burla-elsewhere", project="other-project")

    request = iam.ListServiceAccountsRequest(name=f"projects/{IAM_PROJECT}", page_size=2)
    pages = list(client.list_service_accounts(request=request).pages)

    assert [len(page.accounts) for page in pages] == [2, 2, 1]
    assert {account.email for page in pages for account in page.accounts} == made
    assert [call.method for call in api.requests].count("ListServiceAccounts") == 3


def test_a_bad_page_token_or_size_is_invalid(client: IAMClient) -> None:
    name = f"projects/{IAM_PROJECT}"
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_service_accounts(request={"name": name, "page_token": "%%%"}))
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_service_accounts(request={"name": name, "page_size": -1}))


def test_delete_removes_the_account_and_its_id_is_never_given_again(
    client: IAMClient, api: FakeIamApi
) -> None:
    account = create(client, "burla-main")

    client.delete_service_account(name=account.name)

    assert not api.exists(account.email)
    with pytest.raises(exceptions.NotFound, match="does not exist"):
        client.get_service_account(name=account.name)
    with pytest.raises(exceptions.NotFound):
        client.delete_service_account(name=account.name)
    assert create(client, "burla-main").unique_id != account.unique_id


def test_patch_changes_only_the_fields_its_mask_names(client: IAMClient) -> None:
    account = create(client, "burla-main")
    change = iam.ServiceAccount(name=account.name, display_name="Renamed", description="Gone")

    patched = client.patch_service_account(
        request=iam.PatchServiceAccountRequest(
            service_account=change, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        )
    )

    assert (patched.display_name, patched.description) == ("Renamed", "The cluster")
    assert client.get_service_account(name=account.name) == patched
    with pytest.raises(exceptions.InvalidArgument, match="update_mask"):
        client.patch_service_account(request=iam.PatchServiceAccountRequest(service_account=change))


def test_an_account_id_that_is_taken_already_exists(client: IAMClient) -> None:
    account = create(client, "burla-main")

    with pytest.raises(exceptions.AlreadyExists) as refused:
        create(client, "burla-main")

    assert refused.value.message == (
        f"Service account burla-main already exists within project projects/{IAM_PROJECT}."
    )
    assert refused.value.details == [error_details_pb2.ResourceInfo(resource_name=account.name)]


@pytest.mark.parametrize(
    ("account_id", "message"),
    [
        ("short", 'The account ID "short" does not have a length between 6 and 30.'),
        ("a" * 31, f'The account ID "{"a" * 31}" does not have a length between 6 and 30.'),
        ("1-starts-with-a-digit", "1-starts-with-a-digit does not match"),
        ("ends-with-a-dash-", "ends-with-a-dash- does not match"),
        ("Has-Capitals", "Has-Capitals does not match"),
        ("has_underscore", "has_underscore does not match"),
    ],
)
def test_an_account_id_outside_the_rules_is_invalid(
    client: IAMClient, api: FakeIamApi, account_id: str, message: str
) -> None:
    with pytest.raises(exceptions.InvalidArgument) as refused:
        create(client, account_id)

    assert refused.value.message.startswith(message)
    assert not api.exists(f"{account_id}@{EMAIL_DOMAIN}")


def test_a_display_name_over_100_bytes_is_invalid(client: IAMClient) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="100 UTF-8 bytes"):
        client.create_service_account(
            name=f"projects/{IAM_PROJECT}",
            account_id="burla-main",
            service_account=iam.ServiceAccount(display_name="é" * 51),
        )


def test_an_unknown_project_is_not_found(client: IAMClient) -> None:
    with pytest.raises(exceptions.NotFound, match="Requested entity was not found"):
        create(client, "burla-main", project="no-such-project")
    with pytest.raises(exceptions.NotFound):
        list(client.list_service_accounts(name="projects/no-such-project"))


def test_a_missing_account_is_not_found_or_hidden_under_the_wildcard(client: IAMClient) -> None:
    missing = f"burla-missing@{EMAIL_DOMAIN}"

    with pytest.raises(exceptions.NotFound) as refused:
        client.get_service_account(name=f"projects/{IAM_PROJECT}/serviceAccounts/{missing}")
    assert refused.value.message == (
        f"Service account projects/{IAM_PROJECT}/serviceAccounts/{missing} does not exist."
    )
    # As IAM documents: a missing account named by email under "-" is a 403, not a 404.
    wildcard = f"projects/-/serviceAccounts/{missing}"
    with pytest.raises(exceptions.PermissionDenied) as hidden:
        client.get_service_account(name=wildcard)
    assert hidden.value.message == (
        "Permission iam.serviceAccounts.get is required to perform this operation on service "
        f"account {wildcard}."
    )


# Policies --------------------------------------------------------------------------------


def test_a_policy_is_read_modified_and_written_under_its_etag(client: IAMClient) -> None:
    account = create(client, "burla-main")

    empty = client.get_iam_policy(resource=account.name)
    assert (list(empty.bindings), empty.etag) == ([], EMPTY_POLICY_ETAG)

    binding = policy_pb2.Binding(role=ROLE, members=[USER])
    written = set_policy(client, account.name, binding, etag=empty.etag)
    assert list(written.bindings) == [binding]
    assert written.version == 1
    assert written.etag not in (b"", empty.etag)
    assert client.get_iam_policy(resource=account.name) == written

    with pytest.raises(exceptions.Aborted) as refused:
        set_policy(client, account.name, etag=empty.etag)
    assert refused.value.message == CONCURRENT_CHANGE
    assert client.get_iam_policy(resource=account.name) == written

    overwritten = set_policy(client, account.name)  # no etag: the policy is replaced
    assert list(overwritten.bindings) == []
    assert overwritten.etag != written.etag


def test_a_conditional_binding_needs_version_3(client: IAMClient) -> None:
    account = create(client, "burla-main")
    condition = expr_pb2.Expr(title="soon", expression='request.time < timestamp("2030-01-01")')
    binding = policy_pb2.Binding(role=ROLE, members=[USER], condition=condition)

    with pytest.raises(exceptions.InvalidArgument, match="version 3"):
        set_policy(client, account.name, binding)

    request = iam_policy_pb2.SetIamPolicyRequest(
        resource=account.name, policy=policy_pb2.Policy(version=3, bindings=[binding])
    )
    assert client.set_iam_policy(request=request).version == 3


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            policy_pb2.Binding(role=ROLE, members=["alex@example.com"]),
            'Policy members must be of the form "<type>:<value>".',
        ),
        (
            policy_pb2.Binding(role=ROLE, members=["robot:alex@example.com"]),
            'Policy members must be of the form "<type>:<value>".',
        ),
        (
            policy_pb2.Binding(role=ROLE, members=[f"serviceAccount:burla-nobody@{EMAIL_DOMAIN}"]),
            f"Service account burla-nobody@{EMAIL_DOMAIN} does not exist.",
        ),
        (
            policy_pb2.Binding(role="owner", members=[USER]),
            "Role (owner) does not exist in the resource's hierarchy.",
        ),
        (policy_pb2.Binding(role=ROLE), f"The binding of role {ROLE} has no members."),
    ],
)
def test_a_policy_with_a_bad_binding_is_invalid_and_not_written(
    client: IAMClient, binding: policy_pb2.Binding, message: str
) -> None:
    account = create(client, "burla-main")

    with pytest.raises(exceptions.InvalidArgument) as refused:
        set_policy(client, account.name, binding)

    assert refused.value.message == message
    assert client.get_iam_policy(resource=account.name).etag == EMPTY_POLICY_ETAG


def test_every_documented_member_form_is_accepted(client: IAMClient) -> None:
    account = create(client, "burla-main")
    members = [
        USER,
        "group:admins@example.com",
        "domain:example.com",
        f"serviceAccount:{account.email}",
        "serviceAccount:123456789-compute@developer.gserviceaccount.com",
        "allAuthenticatedUsers",
        "principal://iam.googleapis.com/locations/global/workforcePools/pool/subject/alex",
        f"deleted:serviceAccount:gone@{EMAIL_DOMAIN}?uid=123456789012345678901",
    ]

    written = set_policy(client, account.name, policy_pb2.Binding(role=ROLE, members=members))

    assert list(written.bindings[0].members) == members


def test_a_missing_accounts_policy_is_permission_denied(client: IAMClient) -> None:
    name = f"projects/{IAM_PROJECT}/serviceAccounts/burla-missing@{EMAIL_DOMAIN}"

    with pytest.raises(exceptions.PermissionDenied) as reading:
        client.get_iam_policy(resource=name)
    with pytest.raises(exceptions.PermissionDenied) as writing:
        set_policy(client, name)

    assert reading.value.message.startswith("Permission iam.serviceAccounts.getIamPolicy ")
    assert writing.value.message.startswith("Permission iam.serviceAccounts.setIamPolicy ")


def test_deleting_an_account_marks_it_deleted_where_a_policy_names_it(client: IAMClient) -> None:
    main, node = create(client, "burla-main"), create(client, "burla-node")
    set_policy(
        client,
        main.name,
        policy_pb2.Binding(role=ROLE, members=[USER, f"serviceAccount:{node.email}"]),
    )

    client.delete_service_account(name=node.name)

    members = client.get_iam_policy(resource=main.name).bindings[0].members
    assert list(members) == [USER, f"deleted:serviceAccount:{node.email}?uid={node.unique_id}"]


# Faults and serving ----------------------------------------------------------------------


def test_an_injected_unavailable_is_ridden_over_by_a_retry(
    client: IAMClient, api: FakeIamApi
) -> None:
    api.fail_next(2)
    retry = Retry(predicate=if_exception_type(exceptions.ServiceUnavailable), initial=0.01)

    account = client.create_service_account(
        name=f"projects/{IAM_PROJECT}", account_id="burla-main", retry=retry
    )

    assert api.exists(account.email)
    create_calls = [call for call in api.requests if call.method == "CreateServiceAccount"]
    assert create_calls == create_calls[:1] * 3
    assert create_calls[0].resource == f"projects/{IAM_PROJECT}"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, exceptions.ServiceUnavailable),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, exceptions.ResourceExhausted),
        (grpc.StatusCode.INTERNAL, exceptions.InternalServerError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, exceptions.DeadlineExceeded),
    ],
)
def test_an_injected_error_fails_the_call_and_changes_nothing(
    client: IAMClient, api: FakeIamApi, code: grpc.StatusCode, error: type[Exception]
) -> None:
    api.fail_next(code=code)

    with pytest.raises(error):
        create(client, "burla-main")

    assert not api.exists(f"burla-main@{EMAIL_DOMAIN}")
    assert create(client, "burla-main").email == f"burla-main@{EMAIL_DOMAIN}"


def test_an_injected_error_can_wait_for_one_method(client: IAMClient, api: FakeIamApi) -> None:
    account = create(client, "burla-main")
    api.fail_next(method="GetIamPolicy", code=grpc.StatusCode.INTERNAL)

    assert client.get_service_account(name=account.name) == account
    with pytest.raises(exceptions.InternalServerError):
        client.get_iam_policy(resource=account.name)
    assert client.get_iam_policy(resource=account.name).etag == EMPTY_POLICY_ETAG


def test_only_transient_errors_can_be_injected(api: FakeIamApi) -> None:
    with pytest.raises(ValueError, match="not a transient error"):
        api.fail_next(code=grpc.StatusCode.NOT_FOUND)


def test_a_method_it_does_not_serve_is_unimplemented(client: IAMClient) -> None:
    with pytest.raises(exceptions.MethodNotImplemented):
        client.list_roles(request=iam.ListRolesRequest())


def test_a_closed_fake_frees_its_port_and_answers_no_more() -> None:
    fake = FakeIamApi(projects=[IAM_PROJECT])
    fake.start()
    fake_client, channel = client_of(fake)
    try:
        create(fake_client, "burla-main")
        fake.close()

        with pytest.raises(exceptions.ServiceUnavailable):
            create(fake_client, "burla-node")
    finally:
        channel.close()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(fake.target.rsplit(":", 1)[1])))
        probe.listen()  # no listener is left on the port
