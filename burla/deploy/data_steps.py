"""Deploy's steps for where a cluster keeps things: its Firestore database, its bucket
(with the software its machines install and main_service's token) and its registry."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from burla.core.errors import ConflictError, NotFoundError
from burla.deploy.google import GoogleClients, call, exists, result
from burla.deploy.main_vm import TOKEN_OBJECT, object_name, wheel_object
from burla.deploy.options import DeployOptions
from burla.deploy.plan import Check, OneResource
from burla.deploy.wheel import Wheel

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket  # type: ignore[import-untyped]

DATABASE = "(default)"
MADE_MARK = "deploy/bucket-made-by-deploy"


@dataclass
class DatabaseStep(OneResource):
    """Firestore's (default) database in Native mode: the cluster's Store lives in it
    under burla/<cluster>. Databases carry no labels; destroy leaves it (others may use
    it) and deletes only the cluster's documents."""

    clients: GoogleClients
    options: DeployOptions
    kind: str = "Firestore database"
    needs: tuple[str, ...] = ("firestore.googleapis.com",)
    name: str = DATABASE

    def check(self) -> Check:
        try:
            found = call(
                "read the Firestore database",
                self.clients.databases.get_database,
                name=f"projects/{self.options.project}/databases/{DATABASE}",
            )
        except NotFoundError:
            return Check("missing", f"in {self.options.region}")
        return Check("ok", f"{found.type_.name} in {found.location_id}")

    def apply(self, check: Check) -> None:
        from google.cloud.firestore_admin_v1.types.database import Database

        database = Database(
            location_id=self.options.region, type_=Database.DatabaseType.FIRESTORE_NATIVE
        )
        try:
            operation = call(
                "create the Firestore database",
                self.clients.databases.create_database,
                parent=f"projects/{self.options.project}",
                database=database,
                database_id=DATABASE,
            )
        except ConflictError:
            return  # made by a deploy cut short after it asked
        result("create the Firestore database", operation)


@dataclass
class BucketStep(OneResource):
    """The cluster's bucket: made with the cluster's label, and marked with an object
    (MADE_MARK) that tells destroy the bucket is deploy's to remove. A bucket that was
    there before is used as it is, and kept by destroy."""

    clients: GoogleClients
    options: DeployOptions
    kind: str = "bucket"
    needs: tuple[str, ...] = ("storage.googleapis.com",)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.options.bucket

    def check(self) -> Check:
        found = call(f"read bucket {self.name}", self.clients.storage.lookup_bucket, self.name)
        if found is None:
            return Check("missing", f"in {self.options.region}")
        if not made_by_deploy(self.clients, self.options):
            return Check("ok", "made before burla deploy: destroy keeps it")
        return Check("ok")

    def apply(self, check: Check) -> None:
        storage = self.clients.storage
        bucket = storage.bucket(self.name)
        bucket.labels = dict(self.options.labels)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        with contextlib.suppress(ConflictError):  # made by a deploy cut short after it asked
            region = self.options.region
            call(f"create bucket {self.name}", storage.create_bucket, bucket, location=region)
        mark = storage.bucket(self.name).blob(object_name(self.options, MADE_MARK))
        call(f"mark bucket {self.name} as deploy's", mark.upload_from_string, b"burla deploy\n")


def made_by_deploy(clients: GoogleClients, options: DeployOptions) -> bool:
    mark = clients.storage.bucket(options.bucket).blob(object_name(options, MADE_MARK))
    return bool(call(f"read gs://{options.bucket}/{mark.name}", mark.exists))


@dataclass
class SoftwareStep(OneResource):
    """The wheel of the deployer's burla and its constraints, and main_service's admin
    token (made once: a second deploy keeps it, so logged-in clients stay in)."""

    clients: GoogleClients
    options: DeployOptions
    wheel: Wheel
    kind: str = "software"
    needs: tuple[str, ...] = ("storage.googleapis.com", "bucket")
    name: str = ""

    def __post_init__(self) -> None:
        self.name = f"gs://{self.options.bucket}/{wheel_object(self.options, self.wheel.filename)}"

    def check(self) -> Check:
        if call(f"read bucket {self.options.bucket}", self._bucket) is None:
            return Check("missing", "the bucket is not made yet")
        missing = [name for name in self._contents() if not self._blob(name).exists()]
        if missing:
            return Check("missing", f"upload {', '.join(n.rsplit('/', 1)[-1] for n in missing)}")
        return Check("ok", f"burla {self.wheel.version}")

    def apply(self, check: Check) -> None:
        for name, content in self._contents().items():
            blob = self._blob(name)
            if call(f"read gs://{self.options.bucket}/{name}", blob.exists):
                continue  # never a new token for a cluster that has one; a wheel's name is its code
            with contextlib.suppress(ConflictError):  # if it came meanwhile: create-only
                call(f"upload {name}", blob.upload_from_string, content, if_generation_match=0)

    def admin_token(self) -> str:
        name = object_name(self.options, TOKEN_OBJECT)
        token: str = call("read main_service's token", self._blob(name).download_as_text)
        return token.strip()

    def _contents(self) -> dict[str, bytes]:
        """Each object of the step, by name, with what a new one holds (a new token)."""
        return {
            wheel_object(self.options, self.wheel.filename): self.wheel.content,
            wheel_object(self.options, "constraints.txt"): self.wheel.constraints.encode(),
            object_name(self.options, TOKEN_OBJECT): secrets.token_hex(32).encode(),
        }

    def _bucket(self) -> Bucket | None:
        return self.clients.storage.lookup_bucket(self.options.bucket)

    def _blob(self, name: str) -> Blob:
        return self.clients.storage.bucket(self.options.bucket).blob(name)


@dataclass
class RegistryStep(OneResource):
    """The Artifact Registry repository of the cluster's worker images."""

    clients: GoogleClients
    options: DeployOptions
    kind: str = "registry"
    needs: tuple[str, ...] = ("artifactregistry.googleapis.com",)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.options.registry

    @property
    def _parent(self) -> str:
        return f"projects/{self.options.project}/locations/{self.options.region}"

    def check(self) -> Check:
        found = exists(
            f"read repository {self.name}",
            self.clients.repositories.get_repository,
            name=f"{self._parent}/repositories/{self.options.repository}",
        )
        return Check("ok" if found else "missing")

    def apply(self, check: Check) -> None:
        from google.cloud import artifactregistry_v1

        repository = artifactregistry_v1.Repository(
            format_=artifactregistry_v1.Repository.Format.DOCKER,
            labels=self.options.labels,
            description=f"worker images of burla cluster {self.options.cluster}",
        )
        try:
            operation = call(
                f"create repository {self.name}",
                self.clients.repositories.create_repository,
                parent=self._parent,
                repository_id=self.options.repository,
                repository=repository,
            )
        except ConflictError:
            return
        result(f"create repository {self.name}", operation)
