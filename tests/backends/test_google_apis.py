"""The stand-ins of Service Usage, Resource Manager, Firestore Admin and Artifact Registry
(tests/fakes/google_apis), driven through Google's own client libraries and their REST
transports: what each method answers, the long-running operations through `.result()`,
Google's errors, and the transient failures a client's retry rides over."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.api_core import exceptions
from google.api_core.exceptions import GoogleAPICallError
from google.api_core.future.polling import DEFAULT_POLLING
from google.api_core.retry import Retry, if_transient_error
from google.auth.credentials import AnonymousCredentials
from google.cloud import artifactregistry_v1, resourcemanager_v3, service_usage_v1
from google.cloud.firestore_admin_v1 import FirestoreAdminClient
from google.cloud.firestore_admin_v1.types import Database
from google.iam.v1 import policy_pb2
from google.protobuf import field_mask_pb2
from google.type import expr_pb2

from tests.components.google_apis import PROJECT, PROJECT_NUMBER, PROJECTS
from tests.fakes.google_apis.artifact_registry import FakeArtifactRegistry
from tests.fakes.google_apis.firestore_admin import FakeFirestoreAdmin
from tests.fakes.google_apis.resource_manager import FakeResourceManager
from tests.fakes.google_apis.rest_server import STATUS_CODES, RestStandIn
from tests.fakes.google_apis.service_usage import (
    CATALOG,
    NEW_PROJECT_SERVICES,
    FakeServiceUsage,
)

pytestmark = pytest.mark.integration

FAST_RETRY = Retry(predicate=if_transient_error, initial=0.01, maximum=0.05, timeout=10)
LOCATION = f"projects/{PROJECT}/locations/us-central1"
Repository = artifactregistry_v1.Repository


@contextlib.contextmanager
def refused(
    status: str, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[GoogleAPICallError]]:
    """Expect a call to fail with this canonical status. Over REST the exception's class
    tells only the HTTP code (400 is INVALID_ARGUMENT and FAILED_PRECONDITION alike), so
    the status is read from Google's error body."""
    with pytest.raises(GoogleAPICallError, match=match) as info:
        yield info
    assert info.value.code == STATUS_CODES[status][1]
    assert info.value.response.json()["error"]["status"] == status


def _rest(stand_in: RestStandIn) -> dict[str, Any]:
    """A client's arguments for the REST transport to a stand-in."""
    options = {"api_endpoint": stand_in.endpoint}
    return {"transport": "rest", "credentials": AnonymousCredentials(), "client_options": options}


# Stand-ins, reset after each test, and clients on them ------------------------------------


@pytest.fixture
def usage(service_usage_api: FakeServiceUsage) -> Iterator[FakeServiceUsage]:
    try:
        yield service_usage_api
    finally:
        service_usage_api.reset()


@pytest.fixture
def manager(resource_manager_api: FakeResourceManager) -> Iterator[FakeResourceManager]:
    try:
        yield resource_manager_api
    finally:
        resource_manager_api.reset()


@pytest.fixture
def firestore(
    firestore_admin_api: FakeFirestoreAdmin, usage: FakeServiceUsage
) -> Iterator[FakeFirestoreAdmin]:
    try:
        yield firestore_admin_api
    finally:
        firestore_admin_api.reset()


@pytest.fixture
def registry(
    artifact_registry_api: FakeArtifactRegistry, usage: FakeServiceUsage
) -> Iterator[FakeArtifactRegistry]:
    try:
        yield artifact_registry_api
    finally:
        artifact_registry_api.reset()


@pytest.fixture
def usage_client(usage: FakeServiceUsage) -> Iterator[service_usage_v1.ServiceUsageClient]:
    with service_usage_v1.ServiceUsageClient(**_rest(usage)) as client:
        yield client


@pytest.fixture
def projects_client(manager: FakeResourceManager) -> Iterator[resourcemanager_v3.ProjectsClient]:
    with resourcemanager_v3.ProjectsClient(**_rest(manager)) as client:
        yield client


@pytest.fixture
def firestore_client(firestore: FakeFirestoreAdmin) -> Iterator[FirestoreAdminClient]:
    with FirestoreAdminClient(**_rest(firestore)) as client:
        yield client


@pytest.fixture
def registry_client(
    registry: FakeArtifactRegistry,
) -> Iterator[artifactregistry_v1.ArtifactRegistryClient]:
    with artifactregistry_v1.ArtifactRegistryClient(**_rest(registry)) as client:
        yield client


def _service(client: service_usage_v1.ServiceUsageClient, name: str) -> service_usage_v1.Service:
    return client.get_service(request={"name": f"projects/{PROJECT}/services/{name}"})


def _enable(client: service_usage_v1.ServiceUsageClient, *services: str) -> None:
    request = {"parent": f"projects/{PROJECT}", "service_ids": list(services)}
    client.batch_enable_services(request=request).result(timeout=10)


# Service Usage ---------------------------------------------------------------------------


def test_a_new_project_has_googles_default_services_enabled(usage_client) -> None:
    storage = _service(usage_client, "storage.googleapis.com")
    compute = _service(usage_client, "compute.googleapis.com")

    assert storage.state == service_usage_v1.State.ENABLED
    assert compute.state == service_usage_v1.State.DISABLED
    assert compute.name == f"projects/{PROJECT_NUMBER}/services/compute.googleapis.com"
    assert compute.parent == f"projects/{PROJECT_NUMBER}"
    assert compute.config.title == "Compute Engine API"


def test_enabled_services_are_listed_page_by_page(usage, usage_client) -> None:
    request = {"parent": f"projects/{PROJECT}", "filter": "state:ENABLED", "page_size": 6}
    listed = list(usage_client.list_services(request=request))

    assert {service.config.name for service in listed} == NEW_PROJECT_SERVICES
    pages = [r for r in usage.requests if r.method_id == "services.list"]
    assert len(pages) == 4
    assert all("pageToken" in page.query for page in pages[1:])


def test_a_list_filter_other_than_the_state_is_refused(usage_client) -> None:
    request = {"parent": f"projects/{PROJECT}", "filter": "name:compute"}
    with refused("INVALID_ARGUMENT", "state:ENABLED"):
        list(usage_client.list_services(request=request))


def test_batch_enable_is_done_when_its_operation_is(usage, usage_client) -> None:
    request = {
        "parent": f"projects/{PROJECT}",
        "service_ids": ["compute.googleapis.com", "firestore.googleapis.com"],
    }
    operation = usage_client.batch_enable_services(request=request)

    assert not usage.is_enabled(PROJECT, "compute.googleapis.com")
    response = operation.result(timeout=10)
    assert [service.state for service in response.services] == [service_usage_v1.State.ENABLED] * 2
    assert (
        _service(usage_client, "firestore.googleapis.com").state == service_usage_v1.State.ENABLED
    )
    assert list(operation.metadata.resource_names) == [
        f"services/compute.googleapis.com/projectSettings/{PROJECT_NUMBER}",
        f"services/firestore.googleapis.com/projectSettings/{PROJECT_NUMBER}",
    ]
    methods = [r.method_id for r in usage.requests]
    assert methods == ["services.batchEnable", "operations.get", "services.get"]


def test_an_operation_is_polled_until_it_is_done(usage, usage_client) -> None:
    usage.operations.polls_until_done = 3
    request = {"parent": f"projects/{PROJECT}", "service_ids": ["compute.googleapis.com"]}
    operation = usage_client.batch_enable_services(request=request)

    operation.result(timeout=10, polling=DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.02))

    assert usage.is_enabled(PROJECT, "compute.googleapis.com")
    assert [r.method_id for r in usage.requests].count("operations.get") == 3


def test_enabling_what_is_enabled_answers_a_done_operation(usage, usage_client) -> None:
    request = {"parent": f"projects/{PROJECT}", "service_ids": ["storage.googleapis.com"]}
    operation = usage_client.batch_enable_services(request=request)

    assert operation.operation.name == "operations/noop.DONE_OPERATION"
    assert operation.done()
    assert operation.result().services[0].state == service_usage_v1.State.ENABLED
    assert [r.method_id for r in usage.requests] == ["services.batchEnable"]


def test_batch_enable_takes_at_most_20_services(usage, usage_client) -> None:
    disabled = sorted(set(CATALOG) - NEW_PROJECT_SERVICES)
    request = {
        "parent": f"projects/{PROJECT}",
        "service_ids": disabled + sorted(NEW_PROJECT_SERVICES),
    }

    with refused("INVALID_ARGUMENT", r"maximum batch size \(20\)"):
        usage_client.batch_enable_services(request=request)
    assert not any(usage.is_enabled(PROJECT, name) for name in disabled)
    request["service_ids"] = request["service_ids"][:20]
    usage_client.batch_enable_services(request=request).result(timeout=10)
    assert all(usage.is_enabled(PROJECT, name) for name in disabled)


def test_an_unknown_service_refuses_the_whole_batch(usage, usage_client) -> None:
    request = {
        "parent": f"projects/{PROJECT}",
        "service_ids": ["compute.googleapis.com", "burla.googleapis.com"],
    }
    with refused("PERMISSION_DENIED") as unknown:
        usage_client.batch_enable_services(request=request)

    assert unknown.value.reason == "SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED"
    assert "burla.googleapis.com" in unknown.value.message
    assert not usage.is_enabled(PROJECT, "compute.googleapis.com")


def test_disable_service_is_done_when_its_operation_is(usage, usage_client) -> None:
    usage.enable(PROJECT, "compute.googleapis.com")
    name = f"projects/{PROJECT}/services/compute.googleapis.com"

    response = usage_client.disable_service(request={"name": name}).result(timeout=10)

    assert response.service.state == service_usage_v1.State.DISABLED
    assert not usage.is_enabled(PROJECT, "compute.googleapis.com")


def test_an_operation_that_fails_changes_nothing(usage, usage_client) -> None:
    usage.fail_next_operation("FAILED_PRECONDITION", "Billing must be enabled for activation.")
    request = {"parent": f"projects/{PROJECT}", "service_ids": ["compute.googleapis.com"]}
    operation = usage_client.batch_enable_services(request=request)

    with pytest.raises(exceptions.FailedPrecondition, match="Billing must be enabled"):
        operation.result(timeout=10)
    assert not usage.is_enabled(PROJECT, "compute.googleapis.com")


def test_service_usage_of_an_unknown_project_is_permission_denied(usage_client) -> None:
    with refused("PERMISSION_DENIED"):
        usage_client.get_service(request={"name": "projects/other/services/compute.googleapis.com"})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("UNAVAILABLE", exceptions.ServiceUnavailable),
        ("RESOURCE_EXHAUSTED", exceptions.TooManyRequests),
        ("INTERNAL", exceptions.InternalServerError),
    ],
)
def test_retry_rides_over_transient_errors(usage, usage_client, status, error) -> None:
    usage.refuse_next(status, count=2)
    with pytest.raises(error):
        _service_without_retry(usage_client)

    service = usage_client.get_service(
        request={"name": f"projects/{PROJECT}/services/storage.googleapis.com"}, retry=FAST_RETRY
    )

    assert service.state == service_usage_v1.State.ENABLED
    assert [r.method_id for r in usage.requests] == ["services.get"] * 3


def _service_without_retry(client: service_usage_v1.ServiceUsageClient) -> None:
    client.get_service(
        request={"name": f"projects/{PROJECT}/services/storage.googleapis.com"}, retry=None
    )


def test_rate_limiting_reads_as_google_writes_it(usage, usage_client) -> None:
    usage.refuse_next("RESOURCE_EXHAUSTED")
    with pytest.raises(exceptions.TooManyRequests) as limited:
        _service_without_retry(usage_client)

    assert limited.value.code == 429
    assert limited.value.reason == "RATE_LIMIT_EXCEEDED"


def test_a_refusal_can_aim_at_one_method(usage, usage_client) -> None:
    usage.refuse_next("UNAVAILABLE", method_id="services.batchEnable")
    request = {"parent": f"projects/{PROJECT}", "service_ids": ["compute.googleapis.com"]}

    assert _service(usage_client, "compute.googleapis.com").state == service_usage_v1.State.DISABLED
    with pytest.raises(exceptions.ServiceUnavailable):
        usage_client.batch_enable_services(request=request, retry=None)
    usage_client.batch_enable_services(request=request).result(timeout=10)
    assert usage.is_enabled(PROJECT, "compute.googleapis.com")


def test_the_wire_is_googles_json(usage) -> None:
    service = f"/v1/projects/{PROJECT}/services/storage.googleapis.com"
    with httpx.Client(base_url=usage.endpoint) as http:
        by_name = http.get(service).json()
        by_number = http.get(service, params={"$alt": "json;enum-encoding=int"}).json()
        typo = http.post(
            f"/v1/projects/{PROJECT}/services:batchEnable",
            json={"serviceIDs": ["compute.googleapis.com"]},
        )

    assert by_name == {
        "name": f"projects/{PROJECT_NUMBER}/services/storage.googleapis.com",
        "parent": f"projects/{PROJECT_NUMBER}",
        "config": {"name": "storage.googleapis.com", "title": "Cloud Storage API"},
        "state": "ENABLED",
    }
    assert by_number["state"] == service_usage_v1.State.ENABLED.value
    assert typo.status_code == 400
    assert typo.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert typo.json()["error"]["message"].startswith("Invalid JSON payload received.")
    assert not usage.is_enabled(PROJECT, "compute.googleapis.com")


def test_a_client_pointed_at_another_api_gets_404(usage) -> None:
    client = artifactregistry_v1.ArtifactRegistryClient(**_rest(usage))
    with client, pytest.raises(exceptions.NotFound, match="was not found on this server"):
        client.get_repository(name=f"{LOCATION}/repositories/burla")
    assert usage.requests[0].method_id is None


# Resource Manager ------------------------------------------------------------------------


def test_get_project_by_id_or_number(projects_client) -> None:
    by_id = projects_client.get_project(name=f"projects/{PROJECT}")
    by_number = projects_client.get_project(name=f"projects/{PROJECT_NUMBER}")

    assert by_id.project_id == by_number.project_id == PROJECT
    assert by_id.name == f"projects/{PROJECT_NUMBER}"
    assert by_id.state == resourcemanager_v3.Project.State.ACTIVE


def test_a_project_shows_its_labels(manager, projects_client) -> None:
    manager.labels[PROJECT] = {"burla-cluster": "main"}
    try:
        project = projects_client.get_project(name=f"projects/{PROJECT}")
    finally:
        manager.labels[PROJECT] = {}

    assert dict(project.labels) == {"burla-cluster": "main"}


def test_an_unknown_project_is_permission_denied(projects_client) -> None:
    with refused("PERMISSION_DENIED", r"\(or it may not exist\)"):
        projects_client.get_project(name="projects/not-a-project")
    with refused("PERMISSION_DENIED", "getIamPolicy"):
        projects_client.get_iam_policy(resource="projects/not-a-project")


def _grant(policy: policy_pb2.Policy, role: str, member: str) -> policy_pb2.Policy:
    granted = policy_pb2.Policy()
    granted.CopyFrom(policy)
    granted.bindings.add(role=role, members=[member])
    return granted


def test_a_role_is_granted_by_read_modify_write(projects_client) -> None:
    member = f"serviceAccount:burla-main@{PROJECT}.iam.gserviceaccount.com"
    before = projects_client.get_iam_policy(resource=f"projects/{PROJECT}")

    written = projects_client.set_iam_policy(
        request={
            "resource": f"projects/{PROJECT}",
            "policy": _grant(before, "roles/datastore.user", member),
        }
    )
    after = projects_client.get_iam_policy(resource=f"projects/{PROJECT}")

    assert written.etag != before.etag
    assert after == written
    roles = {binding.role: list(binding.members) for binding in after.bindings}
    assert roles == {"roles/datastore.user": [member], "roles/owner": ["user:owner@example.com"]}


def test_a_stale_etag_is_aborted(manager, projects_client) -> None:
    read = projects_client.get_iam_policy(resource=f"projects/{PROJECT}")
    projects_client.set_iam_policy(
        request={
            "resource": f"projects/{PROJECT}",
            "policy": _grant(read, "roles/viewer", "user:a@b.co"),
        }
    )

    with refused("ABORTED", "concurrent policy changes") as aborted:
        projects_client.set_iam_policy(
            request={
                "resource": f"projects/{PROJECT}",
                "policy": _grant(read, "roles/editor", "user:a@b.co"),
            }
        )
    assert aborted.value.code == 409
    assert "roles/editor" not in {b["role"] for b in manager.policy(PROJECT)["bindings"]}


def test_a_policy_without_etag_overwrites(projects_client) -> None:
    policy = policy_pb2.Policy(
        bindings=[policy_pb2.Binding(role="roles/owner", members=["user:b@c.io"])]
    )
    projects_client.set_iam_policy(request={"resource": f"projects/{PROJECT}", "policy": policy})

    after = projects_client.get_iam_policy(resource=f"projects/{PROJECT}")
    assert [(b.role, list(b.members)) for b in after.bindings] == [("roles/owner", ["user:b@c.io"])]


@pytest.mark.parametrize(
    ("role", "member", "message"),
    [
        ("owner", "user:a@b.co", "Role owner is not supported"),
        ("roles/viewer", "a@b.co", "must be of the form"),
        ("roles/viewer", "robot:a@b.co", "unknown type"),
        ("roles/viewer", "allUsers", "invalid argument"),
        ("roles/viewer", "serviceAccount:not-an-email", "malformed"),
    ],
)
def test_invalid_bindings_are_refused(manager, projects_client, role, member, message) -> None:
    read = projects_client.get_iam_policy(resource=f"projects/{PROJECT}")
    with refused("INVALID_ARGUMENT", message):
        projects_client.set_iam_policy(
            request={"resource": f"projects/{PROJECT}", "policy": _grant(read, role, member)}
        )
    assert manager.policy(PROJECT)["etag"] == _etag_text(read)


def _etag_text(policy: policy_pb2.Policy) -> str:
    return base64.b64encode(policy.etag).decode()


def test_a_service_account_member_must_exist() -> None:
    known = f"burla-main@{PROJECT}.iam.gserviceaccount.com"
    manager = FakeResourceManager(PROJECTS, service_account_exists=lambda email: email == known)
    manager.start()
    try:
        with resourcemanager_v3.ProjectsClient(**_rest(manager)) as client:
            for email, outcome in [
                (known, contextlib.nullcontext()),
                (f"gone@{PROJECT}.iam.gserviceaccount.com", refused("INVALID_ARGUMENT", "gone@")),
            ]:
                read = client.get_iam_policy(resource=f"projects/{PROJECT}")
                policy = _grant(read, "roles/viewer", f"serviceAccount:{email}")
                with outcome:
                    client.set_iam_policy(
                        request={"resource": f"projects/{PROJECT}", "policy": policy}
                    )
        assert manager.policy(PROJECT)["bindings"][1]["members"] == [f"serviceAccount:{known}"]
    finally:
        manager.close()


def test_conditional_bindings_need_policy_version_3(projects_client) -> None:
    condition = expr_pb2.Expr(
        title="soon", expression="request.time < timestamp('2030-01-01T00:00:00Z')"
    )
    binding = policy_pb2.Binding(role="roles/viewer", members=["user:a@b.co"], condition=condition)
    policy = policy_pb2.Policy(version=1, bindings=[binding])

    with refused("INVALID_ARGUMENT", "version 3"):
        projects_client.set_iam_policy(
            request={"resource": f"projects/{PROJECT}", "policy": policy}
        )
    policy.version = 3
    projects_client.set_iam_policy(request={"resource": f"projects/{PROJECT}", "policy": policy})
    with refused("INVALID_ARGUMENT", "version 3"):
        projects_client.get_iam_policy(resource=f"projects/{PROJECT}")
    read = projects_client.get_iam_policy(
        request={"resource": f"projects/{PROJECT}", "options": {"requested_policy_version": 3}}
    )
    assert read.version == 3
    assert read.bindings[0].condition.title == "soon"


# Firestore Admin ---------------------------------------------------------------------------

DEFAULT_DATABASE = f"projects/{PROJECT}/databases/(default)"


def _create_database(client: FirestoreAdminClient, database_id: str = "(default)", **fields):
    wanted = {"location_id": "nam5", "type_": Database.DatabaseType.FIRESTORE_NATIVE, **fields}
    return client.create_database(
        parent=f"projects/{PROJECT}", database=Database(**wanted), database_id=database_id
    )


def test_firestore_is_disabled_until_service_usage_enables_it(
    usage_client, firestore_client
) -> None:
    with refused("PERMISSION_DENIED", "Cloud Firestore API has not been used") as off:
        firestore_client.get_database(name=DEFAULT_DATABASE)
    assert off.value.reason == "SERVICE_DISABLED"

    _enable(usage_client, "firestore.googleapis.com")

    with pytest.raises(exceptions.NotFound, match=r"The database \(default\) does not exist"):
        firestore_client.get_database(name=DEFAULT_DATABASE)


def test_the_default_database_is_created_through_its_operation(
    usage, firestore, firestore_client
) -> None:
    usage.enable(PROJECT, "firestore.googleapis.com")

    created = _create_database(firestore_client).result(timeout=10)
    read = firestore_client.get_database(name=DEFAULT_DATABASE)

    assert read == created
    assert created.name == DEFAULT_DATABASE
    assert created.location_id == "nam5"
    assert created.type_ == Database.DatabaseType.FIRESTORE_NATIVE
    assert created.uid
    assert created.etag
    assert (
        created.delete_protection_state == Database.DeleteProtectionState.DELETE_PROTECTION_DISABLED
    )
    assert [
        db.name for db in firestore_client.list_databases(parent=f"projects/{PROJECT}").databases
    ] == [DEFAULT_DATABASE]
    assert "databases.operations.get" in [r.method_id for r in firestore.requests]


def test_a_database_that_exists_cannot_be_created_again(usage, firestore_client) -> None:
    usage.enable(PROJECT, "firestore.googleapis.com")
    _create_database(firestore_client).result(timeout=10)

    with refused("ALREADY_EXISTS", "Database already exists"):
        _create_database(firestore_client, location_id="eur3")


def test_a_deleted_database_is_gone(usage, firestore_client) -> None:
    usage.enable(PROJECT, "firestore.googleapis.com")
    _create_database(firestore_client, "burla-jobs").result(timeout=10)
    name = f"projects/{PROJECT}/databases/burla-jobs"

    deleted = firestore_client.delete_database(name=name).result(timeout=10)

    assert deleted.name == name
    assert deleted.delete_time
    with pytest.raises(exceptions.NotFound):
        firestore_client.get_database(name=name)


def test_a_protected_database_is_not_deleted(usage, firestore_client) -> None:
    usage.enable(PROJECT, "firestore.googleapis.com")
    protected = Database.DeleteProtectionState.DELETE_PROTECTION_ENABLED
    _create_database(firestore_client, delete_protection_state=protected).result(timeout=10)

    with refused("FAILED_PRECONDITION", "delete protection"):
        firestore_client.delete_database(name=DEFAULT_DATABASE)
    assert firestore_client.get_database(name=DEFAULT_DATABASE).location_id == "nam5"


@pytest.mark.parametrize(
    ("database_id", "fields", "message"),
    [
        ("(default)", {"location_id": "mars-north1"}, "locationId"),
        ("Jobs", {}, "database id"),
        ("abc", {}, "database id"),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", {}, "database id"),
        ("(default)", {"type_": Database.DatabaseType.DATABASE_TYPE_UNSPECIFIED}, "type"),
    ],
)
def test_invalid_databases_are_refused(
    usage, firestore_client, database_id, fields, message
) -> None:
    usage.enable(PROJECT, "firestore.googleapis.com")
    with refused("INVALID_ARGUMENT", message):
        _create_database(firestore_client, database_id, **fields)


# Artifact Registry -------------------------------------------------------------------------


def _create_repository(
    client: artifactregistry_v1.ArtifactRegistryClient, repository_id: str = "burla", **fields
) -> Repository:
    wanted = {"format_": Repository.Format.DOCKER, **fields}
    operation = client.create_repository(
        parent=LOCATION, repository_id=repository_id, repository=Repository(**wanted)
    )
    return operation.result(timeout=10)


def test_artifact_registry_is_disabled_until_service_usage_enables_it(
    registry_client, usage
) -> None:
    with refused("PERMISSION_DENIED") as off:
        registry_client.get_repository(name=f"{LOCATION}/repositories/burla")
    assert off.value.reason == "SERVICE_DISABLED"


def test_a_docker_repository_is_created_through_its_operation(
    usage, registry, registry_client
) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")

    created = _create_repository(
        registry_client, labels={"burla-cluster": "main"}, description="burla's images"
    )
    read = registry_client.get_repository(name=f"{LOCATION}/repositories/burla")

    assert read == created
    assert created.name == f"{LOCATION}/repositories/burla"
    assert created.format_ == Repository.Format.DOCKER
    assert created.mode == Repository.Mode.STANDARD_REPOSITORY
    assert created.registry_uri == f"us-central1-docker.pkg.dev/{PROJECT}/burla"
    assert dict(created.labels) == {"burla-cluster": "main"}
    assert created.description == "burla's images"
    assert [r.method_id for r in registry.requests] == [
        "repositories.create",
        "operations.get",
        "repositories.get",
    ]


def test_repositories_are_listed_page_by_page(usage, registry_client) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")
    for repository_id in ("c-images", "a-images", "b-images"):
        _create_repository(registry_client, repository_id)

    pager = registry_client.list_repositories(request={"parent": LOCATION, "page_size": 2})

    assert [repository.name.rsplit("/", 1)[1] for repository in pager] == [
        "a-images",
        "b-images",
        "c-images",
    ]


def test_update_changes_what_its_mask_names(usage, registry_client) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")
    _create_repository(registry_client, labels={"old": "1"}, description="before")
    name = f"{LOCATION}/repositories/burla"

    updated = registry_client.update_repository(
        repository=Repository(name=name, labels={"new": "2"}, description="ignored"),
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    )

    assert dict(updated.labels) == {"new": "2"}
    assert updated.description == "before"
    assert registry_client.get_repository(name=name) == updated
    with refused("INVALID_ARGUMENT", "format cannot be updated"):
        registry_client.update_repository(
            repository=Repository(name=name, format_=Repository.Format.PYTHON),
            update_mask=field_mask_pb2.FieldMask(paths=["format"]),
        )


def test_a_deleted_repository_is_gone(usage, registry_client) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")
    _create_repository(registry_client)
    name = f"{LOCATION}/repositories/burla"

    registry_client.delete_repository(name=name).result(timeout=10)

    with pytest.raises(exceptions.NotFound, match="Requested entity was not found"):
        registry_client.get_repository(name=name)


def test_a_repository_that_exists_cannot_be_created_again(usage, registry_client) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")
    _create_repository(registry_client)

    with refused("ALREADY_EXISTS", "the repository already exists"):
        _create_repository(registry_client)


@pytest.mark.parametrize(
    ("repository_id", "fields", "message"),
    [
        ("Burla", {}, "repository id"),
        ("burla-", {}, "repository id"),
        ("burla", {"labels": {"Cluster": "main"}}, "label"),
        ("burla", {"format_": Repository.Format.FORMAT_UNSPECIFIED}, "format"),
    ],
)
def test_invalid_repositories_are_refused(
    usage, registry_client, repository_id, fields, message
) -> None:
    usage.enable(PROJECT, "artifactregistry.googleapis.com")
    with refused("INVALID_ARGUMENT", message):
        _create_repository(registry_client, repository_id, **fields)
