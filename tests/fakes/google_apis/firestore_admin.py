"""FakeFirestoreAdmin: the Firestore Admin API v1's databases (firestore.googleapis.com), for
google-cloud-firestore's `firestore_admin_v1` REST transport.

Served, for a project P named by id or number and a database D (see rest_server.py for
what every stand-in does):

    GET    /v1/projects/P/databases/D                   databases.get
    POST   /v1/projects/P/databases?databaseId=D        databases.create (long-running)
    GET    /v1/projects/P/databases                     databases.list
    DELETE /v1/projects/P/databases/D                   databases.delete (long-running)
    GET    /v1/projects/P/databases/D/operations/OP     databases.operations.get

As Google's reference has it: a database id is "(default)" or 4-63 characters of
[a-z0-9-], first a letter, last a letter or number, not UUID-like; the location must
be one of Firestore's (LOCATIONS: its regions and the multi-regions nam5, nam7 and eur3);
the type FIRESTORE_NATIVE or DATASTORE_MODE; a database that exists cannot be created
again (409 ALREADY_EXISTS "Database already exists. Please use another database_id"). A
Database has `name` (`projects/PROJECT_ID/databases/D`), `uid`, times, `locationId`,
`type`, `concurrencyMode` (PESSIMISTIC unless given), `versionRetentionPeriod` 3600s,
`earliestVersionTime`, `pointInTimeRecoveryEnablement`, `appEngineIntegrationMode`,
`deleteProtectionState`, `databaseEdition` STANDARD and an `etag`. create's operation has
CreateDatabaseMetadata and the Database as response; delete's DeleteDatabaseMetadata and
the Database with its `deleteTime`. delete refuses a database with delete protection
(400 FAILED_PRECONDITION) and one whose `etag` is not the one given (409 ABORTED). A
missing database is 404 NOT_FOUND "The database D does not exist for project P ...". An
unknown project gets 403 PERMISSION_DENIED. Every method fails with 403 and ErrorInfo
SERVICE_DISABLED ("Cloud Firestore API has not been used in project N before or it is
disabled. ...") while `api_enabled(project_id)` says the API is not enabled; by default it
always is.

Not modelled: documents and every other admin resource (indexes, fields, backups, user
credentials, import/export, restore, clone); databases.patch; listing deleted databases
(`showDeleted`); the location of the (default) database being tied to the project's
default resource location; Enterprise edition rules; CMEK; the time Google keeps a
deleted database's id from being used again. The wording of the refusals of a malformed
database id, location or type is this stand-in's.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping

from google.cloud.firestore_admin_v1 import types
from google.longrunning import operations_pb2

from tests.fakes.google_apis.rest_server import (
    ApiError,
    Call,
    Json,
    RestStandIn,
    Route,
    error_info,
    service_disabled,
    timestamp,
)

LOCATIONS = frozenset(
    {
        "nam5",
        "nam7",
        "eur3",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
    }
)
"""Firestore's locations (cloud.google.com/firestore/docs/locations)."""

DEFAULT_DATABASE = "(default)"
_DATABASE_ID = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]")
_UUID_LIKE = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
_DATABASE_TYPES = {"FIRESTORE_NATIVE", "DATASTORE_MODE"}
_TYPES = "type.googleapis.com/google.firestore.admin.v1."


def _always(project: str) -> bool:
    return True


class FakeFirestoreAdmin(RestStandIn):
    """The Firestore Admin API's databases (see module doc); kept per project id."""

    service_name = "firestore.googleapis.com"

    def __init__(
        self, projects: Mapping[str, int], *, api_enabled: Callable[[str], bool] = _always
    ) -> None:
        self.api_enabled = api_enabled
        self._databases: dict[str, dict[str, Json]] = {}
        super().__init__(projects)
        self._forget()

    def _route_table(self) -> list[Route]:
        databases = "/v1/projects/{project}/databases"
        database = databases + "/{database}"
        database_message, operation = types.Database.pb(), operations_pb2.Operation
        return [
            Route("GET", database, "databases.get", self._get, database_message),
            Route("POST", databases, "databases.create", self._create, operation, database_message),
            Route("GET", databases, "databases.list", self._list, types.ListDatabasesResponse.pb()),
            Route("DELETE", database, "databases.delete", self._delete, operation),
            Route(
                "GET",
                database + "/operations/{operation}",
                "databases.operations.get",
                self._operation,
                operation,
            ),
        ]

    def _forget(self) -> None:
        self._databases = {project: {} for project in self.projects}

    # The API ---------------------------------------------------------------------------

    def _get(self, call: Call) -> Json:
        project = self._usable_project(call)
        return copy.deepcopy(self._existing(project, call.params["database"]))

    def _create(self, call: Call) -> Json:
        project = self._usable_project(call)
        database_id = call.query.get("databaseId", "")
        _check_id(database_id)
        location = call.body.get("locationId", "")
        if location not in LOCATIONS:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid locationId {location!r}: see "
                "https://cloud.google.com/firestore/docs/locations for Firestore's locations.",
            )
        kind = call.body.get("type", "")
        if kind not in _DATABASE_TYPES:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid database type {kind!r}: use FIRESTORE_NATIVE or DATASTORE_MODE.",
            )
        if database_id in self._databases[project]:
            raise _already_exists()
        database = self._new_database(project, database_id, call.body)

        def finish() -> Json:
            if database_id in self._databases[project]:
                raise _already_exists()
            self._databases[project][database_id] = database
            return {"@type": _TYPES + "Database", **copy.deepcopy(database)}

        name = f"{database['name']}/operations/{uuid.uuid4().hex}"
        metadata = {"@type": _TYPES + "CreateDatabaseMetadata"}
        return self.operations.start(name, metadata, finish)

    def _list(self, call: Call) -> Json:
        project = self._usable_project(call)
        found = [copy.deepcopy(db) for _, db in sorted(self._databases[project].items())]
        return {"databases": found} if found else {}

    def _delete(self, call: Call) -> Json:
        project = self._usable_project(call)
        database_id = call.params["database"]
        database = self._existing(project, database_id)
        if database.get("deleteProtectionState") == "DELETE_PROTECTION_ENABLED":
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Database {database_id} has delete protection enabled: disable it before "
                "deleting the database.",
            )
        etag = call.query.get("etag")
        if etag and etag != database["etag"]:
            raise ApiError(
                "ABORTED",
                f"The etag {etag!r} does not match the database's current etag.",
            )

        def finish() -> Json:
            gone = self._databases[project].pop(database_id, database)
            return {"@type": _TYPES + "Database", **copy.deepcopy(gone), "deleteTime": timestamp()}

        name = f"{database['name']}/operations/{uuid.uuid4().hex}"
        metadata = {"@type": _TYPES + "DeleteDatabaseMetadata"}
        return self.operations.start(name, metadata, finish)

    def _operation(self, call: Call) -> Json:
        self._usable_project(call)
        return self.operations.poll(
            f"projects/{call.params['project']}/databases/{call.params['database']}"
            f"/operations/{call.params['operation']}"
        )

    # Helpers (run with the lock held) --------------------------------------------------

    def _usable_project(self, call: Call) -> str:
        reference = call.params["project"]
        project = self._project_id(reference)
        if project is None:
            raise ApiError(
                "PERMISSION_DENIED",
                f"Permission denied on resource project {reference}.",
                [
                    error_info(
                        "CONSUMER_INVALID",
                        "googleapis.com",
                        {"service": self.service_name, "consumer": f"projects/{reference}"},
                    )
                ],
            )
        if not self.api_enabled(project):
            raise service_disabled("Cloud Firestore API", self.service_name, self.projects[project])
        return project

    def _existing(self, project: str, database_id: str) -> Json:
        database = self._databases[project].get(database_id)
        if database is None:
            raise ApiError(
                "NOT_FOUND",
                f"The database {database_id} does not exist for project {project} Please visit "
                f"https://console.cloud.google.com/datastore/setup?project={project} to add a "
                "Cloud Datastore or Cloud Firestore database.",
            )
        return database

    def _new_database(self, project: str, database_id: str, asked: Json) -> Json:
        now = timestamp()
        return {
            "name": f"projects/{project}/databases/{database_id}",
            "uid": str(uuid.uuid4()),
            "createTime": now,
            "updateTime": now,
            "locationId": asked["locationId"],
            "type": asked["type"],
            "concurrencyMode": asked.get("concurrencyMode", "PESSIMISTIC"),
            "versionRetentionPeriod": "3600s",
            "earliestVersionTime": now,
            "pointInTimeRecoveryEnablement": asked.get(
                "pointInTimeRecoveryEnablement", "POINT_IN_TIME_RECOVERY_DISABLED"
            ),
            "appEngineIntegrationMode": asked.get("appEngineIntegrationMode", "DISABLED"),
            "deleteProtectionState": asked.get(
                "deleteProtectionState", "DELETE_PROTECTION_DISABLED"
            ),
            "databaseEdition": "STANDARD",
            "etag": uuid.uuid4().hex,
        }


def _check_id(database_id: str) -> None:
    valid = database_id == DEFAULT_DATABASE or (
        _DATABASE_ID.fullmatch(database_id) and not _UUID_LIKE.fullmatch(database_id)
    )
    if not valid:
        raise ApiError(
            "INVALID_ARGUMENT",
            f'Invalid database id {database_id!r}: it must be "(default)" or 4-63 '
            "characters of lowercase letters, digits and hyphens, starting with a letter and "
            "ending with a letter or digit, and not UUID-like.",
        )


def _already_exists() -> ApiError:
    return ApiError("ALREADY_EXISTS", "Database already exists. Please use another database_id")
