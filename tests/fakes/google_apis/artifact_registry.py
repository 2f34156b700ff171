"""FakeArtifactRegistry: the Artifact Registry API v1's repositories
(artifactregistry.googleapis.com), for google-cloud-artifact-registry's REST transport.

Served, for a project P named by id or number, a location L and a repository R (see
rest_server.py for what every stand-in does):

    GET    /v1/projects/P/locations/L/repositories/R                 repositories.get
    POST   /v1/projects/P/locations/L/repositories?repositoryId=R    repositories.create
                                                                      (long-running)
    GET    /v1/projects/P/locations/L/repositories                   repositories.list
    PATCH  /v1/projects/P/locations/L/repositories/R?updateMask=...  repositories.patch
    DELETE /v1/projects/P/locations/L/repositories/R                 repositories.delete
                                                                      (long-running)
    GET    /v1/projects/P/locations/L/operations/OP                  operations.get

As Google's reference has it: a repository id is 1-63 lowercase letters, digits and
hyphens, starting with a letter and ending with a letter or digit; labels are at most 64,
keys start with a lowercase letter, and keys and values are at most 63 lowercase letters,
digits, underscores and hyphens; an existing repository cannot be created again (409
ALREADY_EXISTS "the repository already exists"); a missing one is 404 NOT_FOUND
"Requested entity was not found.". A Repository has `name`, `format`, `description`,
`labels`, times, `mode` STANDARD_REPOSITORY and `registryUri` (e.g.
`us-central1-docker.pkg.dev/P/R`). create's operation has OperationMetadata and the
Repository as response; delete's response is google.protobuf.Empty. patch changes the
fields its updateMask names (`description`, `labels`), or both without a mask, and answers
with the Repository; `format`, `mode`, `name` and `kmsKeyName` cannot be changed. A list
pages (default 100, at most 1000) in name order. An unknown project gets 403
"Permission 'artifactregistry.repositories.get' denied on resource
'//artifactregistry.googleapis.com/projects/P/locations/L/repositories/R' (or it may not
exist)." (the permission of the method called); an unknown location 400
INVALID_ARGUMENT. Every method fails with 403 and ErrorInfo SERVICE_DISABLED while
`api_enabled(project_id)` says the API is not enabled; by default it always is.

Not modelled: what repositories hold (packages, versions, tags, files, docker images: the
registry itself is tests/components/registry.py) and their IAM policies; remote and virtual
repositories, cleanup policies, CMEK, vulnerability scanning, docker config; list's
`filter` and `orderBy` (refused with 400 INVALID_ARGUMENT rather than ignored);
sizeBytes (always 0); operations.list. The wording of the refusals of a malformed id,
label, location or mask is this stand-in's.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping

from google.cloud.artifactregistry_v1 import types
from google.longrunning import operations_pb2

from tests.fakes.google_apis.rest_server import (
    ApiError,
    Call,
    Json,
    RestStandIn,
    Route,
    page_of,
    permission_denied,
    service_disabled,
    timestamp,
)

LOCATIONS = frozenset(
    {
        "us",
        "europe",
        "asia",
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
        "southamerica-east1",
        "southamerica-west1",
        "europe-central2",
        "europe-north1",
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
"""Artifact Registry's locations: its multi-regions and regions."""

_REPOSITORY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MAX_LABELS = 64
_MUTABLE = {"description", "labels"}
_IMMUTABLE = {"format", "mode", "name", "kmsKeyName", "kms_key_name"}
_TYPES = "type.googleapis.com/google.devtools.artifactregistry.v1."


def _always(project: str) -> bool:
    return True


class FakeArtifactRegistry(RestStandIn):
    """The Artifact Registry API's repositories (see module doc), per project id and
    location."""

    service_name = "artifactregistry.googleapis.com"

    def __init__(
        self, projects: Mapping[str, int], *, api_enabled: Callable[[str], bool] = _always
    ) -> None:
        self.api_enabled = api_enabled
        self._repositories: dict[tuple[str, str], dict[str, Json]] = {}
        super().__init__(projects)

    def _route_table(self) -> list[Route]:
        location = "/v1/projects/{project}/locations/{location}"
        repositories = location + "/repositories"
        repository = repositories + "/{repository}"
        message, operation = types.Repository.pb(), operations_pb2.Operation
        listing = types.ListRepositoriesResponse.pb()
        return [
            Route("GET", repository, "repositories.get", self._get, message),
            Route("POST", repositories, "repositories.create", self._create, operation, message),
            Route("GET", repositories, "repositories.list", self._list, listing),
            Route("PATCH", repository, "repositories.patch", self._patch, message, message),
            Route("DELETE", repository, "repositories.delete", self._delete, operation),
            Route(
                "GET",
                location + "/operations/{operation}",
                "operations.get",
                self._operation,
                operation,
            ),
        ]

    def _forget(self) -> None:
        self._repositories.clear()

    # The API ---------------------------------------------------------------------------

    def _get(self, call: Call) -> Json:
        repositories = self._place(call, "artifactregistry.repositories.get")
        return copy.deepcopy(_existing(repositories, call.params["repository"]))

    def _create(self, call: Call) -> Json:
        repositories = self._place(call, "artifactregistry.repositories.create")
        repository_id = call.query.get("repositoryId", "")
        if not _REPOSITORY_ID.fullmatch(repository_id):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid repository id {repository_id!r}: it must be 1-63 lowercase letters, "
                "digits and hyphens, starting with a letter and ending with a letter or digit.",
            )
        if call.body.get("format", "FORMAT_UNSPECIFIED") == "FORMAT_UNSPECIFIED":
            raise ApiError("INVALID_ARGUMENT", "A repository's format must be given.")
        labels: dict[str, str] = call.body.get("labels", {})
        _check_labels(labels)
        if repository_id in repositories:
            raise _already_exists()
        project, location = self._project_id(call.params["project"]), call.params["location"]
        now = timestamp()
        repository = {
            "name": f"projects/{project}/locations/{location}/repositories/{repository_id}",
            "format": call.body["format"],
            "description": call.body.get("description", ""),
            "labels": labels,
            "createTime": now,
            "updateTime": now,
            "mode": "STANDARD_REPOSITORY",
            "registryUri": f"{location}-{call.body['format'].lower()}.pkg.dev/{project}/"
            f"{repository_id}",
        }

        def finish() -> Json:
            if repository_id in repositories:
                raise _already_exists()
            repositories[repository_id] = repository
            return {"@type": _TYPES + "Repository", **copy.deepcopy(repository)}

        return self._start(call, finish)

    def _list(self, call: Call) -> Json:
        repositories = self._place(call, "artifactregistry.repositories.list")
        for unsupported in ("filter", "orderBy"):
            if call.query.get(unsupported):
                raise ApiError(
                    "INVALID_ARGUMENT", f"This stand-in does not model list's {unsupported}."
                )
        found = [copy.deepcopy(repo) for _, repo in sorted(repositories.items())]
        page, following = page_of(found, call.query, default_size=100, max_size=1000)
        reply: Json = {"repositories": page}
        if following:
            reply["nextPageToken"] = following
        return reply

    def _patch(self, call: Call) -> Json:
        repositories = self._place(call, "artifactregistry.repositories.update")
        repository = _existing(repositories, call.params["repository"])
        mask = call.query.get("updateMask", "")
        paths = [path.strip() for path in mask.split(",") if path.strip()] or sorted(_MUTABLE)
        for path in paths:
            if path in _IMMUTABLE:
                raise ApiError("INVALID_ARGUMENT", f"Field {path} cannot be updated.")
            if path not in _MUTABLE:
                raise ApiError("INVALID_ARGUMENT", f"Invalid update mask path {path!r}.")
        if "labels" in paths:
            _check_labels(call.body.get("labels", {}))
            repository["labels"] = dict(call.body.get("labels", {}))
        if "description" in paths:
            repository["description"] = call.body.get("description", "")
        repository["updateTime"] = timestamp()
        return copy.deepcopy(repository)

    def _delete(self, call: Call) -> Json:
        repositories = self._place(call, "artifactregistry.repositories.delete")
        repository_id = call.params["repository"]
        _existing(repositories, repository_id)

        def finish() -> Json:
            repositories.pop(repository_id, None)
            return {"@type": "type.googleapis.com/google.protobuf.Empty"}

        return self._start(call, finish)

    def _operation(self, call: Call) -> Json:
        self._place(call, "artifactregistry.repositories.get")
        return self.operations.poll(
            _location_name(call) + f"/operations/{call.params['operation']}"
        )

    # Helpers (run with the lock held) --------------------------------------------------

    def _place(self, call: Call, permission: str) -> dict[str, Json]:
        """The repositories of the call's project and location, once the call may use them."""
        project = self._project_id(call.params["project"])
        if project is None:
            resource = f"//artifactregistry.googleapis.com/{_location_name(call)}"
            if "repository" in call.params:
                resource += f"/repositories/{call.params['repository']}"
            raise permission_denied(permission, resource, self.service_name)
        if not self.api_enabled(project):
            raise service_disabled(
                "Artifact Registry API", self.service_name, self.projects[project]
            )
        location = call.params["location"]
        if location not in LOCATIONS:
            raise ApiError("INVALID_ARGUMENT", f"Location {location!r} is not a valid location.")
        return self._repositories.setdefault((project, location), {})

    def _start(self, call: Call, finish: Callable[[], Json]) -> Json:
        project = self._project_id(call.params["project"])
        name = f"projects/{project}/locations/{call.params['location']}/operations/{uuid.uuid4()}"
        metadata = {"@type": _TYPES + "OperationMetadata"}
        return self.operations.start(name, metadata, finish)


def _location_name(call: Call) -> str:
    return f"projects/{call.params['project']}/locations/{call.params['location']}"


def _existing(repositories: dict[str, Json], repository_id: str) -> Json:
    repository = repositories.get(repository_id)
    if repository is None:
        raise ApiError("NOT_FOUND", "Requested entity was not found.")
    return repository


def _check_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > _MAX_LABELS:
        raise ApiError("INVALID_ARGUMENT", f"A repository has at most {_MAX_LABELS} labels.")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid label {key}={value}: keys start with a lowercase letter; keys and "
                "values are at most 63 lowercase letters, digits, underscores and hyphens.",
            )


def _already_exists() -> ApiError:
    return ApiError("ALREADY_EXISTS", "the repository already exists")
