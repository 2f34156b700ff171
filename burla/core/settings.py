"""Settings: which cluster a client uses, and how a cloud cluster is laid out.

One pydantic model, read from a TOML file and the environment; later sources win:
defaults, then the file ($BURLA_CONFIG, else ~/.burla/config.toml), then environment
variables: BURLA_<FIELD> for top-level fields (BURLA_BACKEND, BURLA_MAIN_URL, ...) and
BURLA_GCP_<FIELD> for the [gcp] table (BURLA_GCP_PROJECT, BURLA_GCP_ZONE, ...).

    backend = "gcp"
    main_url = "http://10.0.0.2:8080"   # a cluster's main_service, for backend "gcp"
    token = "..."

    [gcp]
    project = "my-project"
    zone = "us-central1-a"
    machine_type = "n2-standard-8"
    bucket = "my-project-burla"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from burla.core.errors import InvalidRequestError

Backend = Literal["local", "docker", "gcp"]


class GcpSettings(BaseModel):
    """A cluster on Google Cloud: Firestore, Cloud Storage and Compute Engine in one project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = None
    zone: str = "us-central1-a"
    machine_type: str = "n2-standard-4"
    """The node type of the standby set: a Compute Engine machine type."""
    standby_nodes: int = Field(default=1, ge=0)
    bucket: str | None = None
    """Cloud Storage bucket for functions, big inputs and results (default: <project>-burla)."""
    cluster: str = "burla"
    """Names the cluster's VMs, labels, Firestore namespace and blob prefix."""
    source_image: str = "projects/debian-cloud/global/images/family/debian-12"

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = "local"
    """local: processes on this machine; docker: the same with Docker containers;
    gcp: the cluster at `main_url`, on Google Cloud."""
    main_url: str | None = None
    token: str | None = None
    gcp: GcpSettings = GcpSettings()


def settings_from(env: Mapping[str, str], file_text: str | None, source: str = "") -> Settings:
    """Settings from a config file's text (or None) and environment variables."""
    values: dict[str, Any] = {}
    if file_text is not None:
        try:
            values = tomllib.loads(file_text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidRequestError(
                f"{source or 'the config file'} is not TOML: {error}"
            ) from None
    gcp = dict(values.get("gcp") or {})
    for name in Settings.model_fields:
        if name != "gcp" and (value := env.get(f"BURLA_{name.upper()}")):
            values[name] = value
    for name in GcpSettings.model_fields:
        if value := env.get(f"BURLA_GCP_{name.upper()}"):
            gcp[name] = value
    values["gcp"] = gcp
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        where = f"{source} and " if source else ""
        raise InvalidRequestError(
            f"bad burla settings (from {where}BURLA_* variables):\n{error}"
        ) from None


def config_path(env: Mapping[str, str]) -> Path:
    return Path(env.get("BURLA_CONFIG") or Path.home() / ".burla" / "config.toml")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """This process's settings: the config file, if there is one, then the environment."""
    env = os.environ if env is None else env
    path = config_path(env)
    try:
        text: str | None = path.read_text()
    except FileNotFoundError:
        text = None
    return settings_from(env, text, str(path))
