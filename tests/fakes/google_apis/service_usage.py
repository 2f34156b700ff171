"""FakeServiceUsage: the Service Usage API v1 (serviceusage.googleapis.com), which APIs a
project has enabled, for google-cloud-service-usage's REST transport.

Served, for a project P named by id or number (see rest_server.py for what every
stand-in does):

    GET  /v1/projects/P/services/S             services.get
    GET  /v1/projects/P/services               services.list
    POST /v1/projects/P/services:batchEnable   services.batchEnable (long-running)
    POST /v1/projects/P/services/S:disable     services.disable (long-running)
    GET  /v1/operations/OP                     operations.get

As Google's reference has it: a Service is named by the project's number
(`projects/123/services/compute.googleapis.com`) whichever way the caller named the
project, with `parent`, `config.name`, `config.title` and `state` ENABLED or DISABLED. A
list takes the filters `state:ENABLED` and `state:DISABLED` only, pages of 50 by default
and at most 200. batchEnable takes at most 20 ids ("Number of services must not exceed
the maximum batch size (20).") and is atomic: one service Google does not know (not in
CATALOG) refuses the whole batch with 403 "Not found or permission denied for
service(s): ..." and ErrorInfo SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED, as disable
and get do for such a service. A batch with nothing left to enable answers with the done
operation `operations/noop.DONE_OPERATION`. The operations' responses are a
BatchEnableServicesResponse and a DisableServiceResponse, their metadata an
OperationMetadata naming `services/S/projectSettings/NUMBER`. An unknown project gets 403
PERMISSION_DENIED with ErrorInfo AUTH_PERMISSION_DENIED. A new project has
NEW_PROJECT_SERVICES enabled (Google's list of services enabled by default on a project
created in the console or with gcloud), or the `initially_enabled` given.

Not modelled: folders and organizations as parents, services.enable, batchGet and
operations.list; dependencies between services (enabling compute does not enable what it
needs, disabling ignores `disableDependentServices`) and usage (`checkIfServiceHasUsage`
finds none); the full service config (apis, quota, endpoints...); the minutes an enable
can take to reach other APIs (it reaches them when the operation is done).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from google.cloud.service_usage_v1 import types
from google.longrunning import operations_pb2

from tests.fakes.google_apis.rest_server import (
    ApiError,
    Call,
    Json,
    RestStandIn,
    Route,
    error_info,
    page_of,
)

CATALOG: dict[str, str] = {
    "analyticshub.googleapis.com": "Analytics Hub API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "bigquery.googleapis.com": "BigQuery API",
    "bigqueryconnection.googleapis.com": "BigQuery Connection API",
    "bigquerydatapolicy.googleapis.com": "BigQuery Data Policy API",
    "bigquerymigration.googleapis.com": "BigQuery Migration API",
    "bigqueryreservation.googleapis.com": "BigQuery Reservation API",
    "bigquerystorage.googleapis.com": "BigQuery Storage API",
    "cloudapis.googleapis.com": "Google Cloud APIs",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "cloudtrace.googleapis.com": "Cloud Trace API",
    "compute.googleapis.com": "Compute Engine API",
    "dataform.googleapis.com": "Dataform API",
    "dataplex.googleapis.com": "Cloud Dataplex API",
    "datastore.googleapis.com": "Cloud Datastore API",
    "firestore.googleapis.com": "Cloud Firestore API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "logging.googleapis.com": "Cloud Logging API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "servicemanagement.googleapis.com": "Service Management API",
    "serviceusage.googleapis.com": "Service Usage API",
    "sql-component.googleapis.com": "Cloud SQL",
    "storage-api.googleapis.com": "Google Cloud Storage JSON API",
    "storage-component.googleapis.com": "Cloud Storage",
    "storage.googleapis.com": "Cloud Storage API",
}
"""The services this stand-in knows, with their titles: every other name is unknown to it."""

NEW_PROJECT_SERVICES = frozenset(
    {
        "analyticshub.googleapis.com",
        "bigquery.googleapis.com",
        "bigqueryconnection.googleapis.com",
        "bigquerydatapolicy.googleapis.com",
        "bigquerymigration.googleapis.com",
        "bigqueryreservation.googleapis.com",
        "bigquerystorage.googleapis.com",
        "cloudapis.googleapis.com",
        "cloudtrace.googleapis.com",
        "dataform.googleapis.com",
        "dataplex.googleapis.com",
        "datastore.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "servicemanagement.googleapis.com",
        "serviceusage.googleapis.com",
        "sql-component.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
        "storage.googleapis.com",
    }
)
"""What Google enables on a project created in the console or with gcloud
(cloud.google.com/service-usage/docs/enabled-service, "Services enabled by default")."""

MAX_BATCH = 20
_FILTERS = {"": None, "state:ENABLED": True, "state:DISABLED": False}
_TYPES = "type.googleapis.com/google.api.serviceusage.v1."
_NOOP_OPERATION = "operations/noop.DONE_OPERATION"


class FakeServiceUsage(RestStandIn):
    """The Service Usage API (see module doc); state is kept per project id."""

    service_name = "serviceusage.googleapis.com"

    def __init__(
        self,
        projects: Mapping[str, int],
        *,
        initially_enabled: Iterable[str] = NEW_PROJECT_SERVICES,
    ) -> None:
        self.initially_enabled = frozenset(initially_enabled)
        unknown = self.initially_enabled - CATALOG.keys()
        if unknown:
            raise ValueError(f"services not in CATALOG: {sorted(unknown)}")
        self._enabled: dict[str, set[str]] = {}
        super().__init__(projects)
        self._forget()

    def _route_table(self) -> list[Route]:
        services = "/v1/projects/{project}/services"
        return [
            Route("GET", services + "/{service}", "services.get", self._get, types.Service.pb()),
            Route("GET", services, "services.list", self._list, types.ListServicesResponse.pb()),
            Route(
                "POST",
                services + ":batchEnable",
                "services.batchEnable",
                self._batch_enable,
                operations_pb2.Operation,
                types.BatchEnableServicesRequest.pb(),
            ),
            Route(
                "POST",
                services + "/{service}:disable",
                "services.disable",
                self._disable,
                operations_pb2.Operation,
                types.DisableServiceRequest.pb(),
            ),
            Route(
                "GET",
                "/v1/operations/{operation}",
                "operations.get",
                lambda call: self.operations.poll(f"operations/{call.params['operation']}"),
                operations_pb2.Operation,
            ),
        ]

    def _forget(self) -> None:
        self._enabled = {project: set(self.initially_enabled) for project in self.projects}

    # Test controls ---------------------------------------------------------------------

    def is_enabled(self, project: str, service: str) -> bool:
        """Whether a service is enabled on a project (by id), as other stand-ins ask."""
        with self._lock:
            return service in self._enabled.get(project, set())

    def enable(self, project: str, *services: str) -> None:
        """Enable services on a project directly, as if done before the test."""
        with self._lock:
            self._enabled[project].update(services)

    # The API ---------------------------------------------------------------------------

    def _get(self, call: Call) -> Json:
        project = self._known_project(call, f"get service [{call.params['service']}]")
        _refuse_unknown([call.params["service"]])
        return self._service(project, call.params["service"])

    def _list(self, call: Call) -> Json:
        project = self._known_project(call, f"list services of [projects/{call.params['project']}]")
        wanted = call.query.get("filter", "").strip()
        if wanted not in _FILTERS:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid filter {wanted!r}: the allowed filters are state:ENABLED and "
                "state:DISABLED.",
            )
        state = _FILTERS[wanted]
        services = [
            self._service(project, name)
            for name in sorted(CATALOG)
            if state is None or (name in self._enabled[project]) == state
        ]
        page, following = page_of(services, call.query, default_size=50, max_size=200)
        reply: Json = {"services": page}
        if following:
            reply["nextPageToken"] = following
        return reply

    def _batch_enable(self, call: Call) -> Json:
        project = self._known_project(call, "enable services")
        ids: list[str] = call.body.get("serviceIds", [])
        if not ids:
            raise ApiError("INVALID_ARGUMENT", "serviceIds must name at least one service.")
        if len(ids) > MAX_BATCH:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Number of services must not exceed the maximum batch size ({MAX_BATCH}).",
            )
        _refuse_unknown(ids)
        wanted = list(dict.fromkeys(ids))
        number = self.projects[project]

        def finish() -> Json:
            self._enabled[project].update(wanted)
            services = [self._service(project, name) for name in wanted]
            return {"@type": _TYPES + "BatchEnableServicesResponse", "services": services}

        metadata = self._metadata(number, wanted)
        if set(wanted) <= self._enabled[project]:
            return self.operations.start(_NOOP_OPERATION, metadata, finish, at_once=True)
        name = f"operations/acat.p2-{number}-{uuid.uuid4()}"
        return self.operations.start(name, metadata, finish)

    def _disable(self, call: Call) -> Json:
        service = call.params["service"]
        project = self._known_project(call, f"disable service [{service}]")
        _refuse_unknown([service])
        number = self.projects[project]

        def finish() -> Json:
            self._enabled[project].discard(service)
            reply = {"service": self._service(project, service)}
            return {"@type": _TYPES + "DisableServiceResponse", **reply}

        name = f"operations/acf.p2-{number}-{uuid.uuid4()}"
        return self.operations.start(name, self._metadata(number, [service]), finish)

    # Helpers (run with the lock held) --------------------------------------------------

    def _known_project(self, call: Call, what: str) -> str:
        project = self._project_id(call.params["project"])
        if project is None:
            raise ApiError(
                "PERMISSION_DENIED",
                f"Permission denied to {what}.",
                [error_info("AUTH_PERMISSION_DENIED", self.service_name)],
            )
        return project

    def _service(self, project: str, name: str) -> Json:
        number = self.projects[project]
        return {
            "name": f"projects/{number}/services/{name}",
            "parent": f"projects/{number}",
            "config": {"name": name, "title": CATALOG[name]},
            "state": "ENABLED" if name in self._enabled[project] else "DISABLED",
        }

    def _metadata(self, number: int, services: list[str]) -> Json:
        names = [f"services/{name}/projectSettings/{number}" for name in services]
        return {"@type": _TYPES + "OperationMetadata", "resourceNames": names}


def _refuse_unknown(services: list[str]) -> None:
    unknown = [name for name in services if name not in CATALOG]
    if unknown:
        raise ApiError(
            "PERMISSION_DENIED",
            f"Not found or permission denied for service(s): {', '.join(unknown)}.",
            [
                error_info(
                    "SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED",
                    "serviceusage.googleapis.com",
                    {"services": ",".join(unknown)},
                )
            ],
        )
