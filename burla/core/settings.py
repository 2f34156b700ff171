"""Settings: which cluster a client uses, and how a cloud cluster is laid out.

Read from a TOML file and the environment; later sources win:
defaults, then the file ($BURLA_CONFIG, else ~/.burla/config.toml), then environment
variables: BURLA_<FIELD> for top-level fields (BURLA_BACKEND, BURLA_MAIN_URL, ...) and
BURLA_GCP_<FIELD> for the [gcp] table (BURLA_GCP_PROJECT, BURLA_GCP_ZONE, ...).

    backend = "gcp"
    main_url = "https://34.1.2.3:8080"  # a cluster's main_service, for backend "gcp"
    main_cert_sha256 = "..."            # its certificate's fingerprint, pinned
    token = "..."

    [gcp]
    project = "my-project"
    zone = "us-central1-a"
    machine_type = "n2-standard-8"
    spot = true                         # the standby VMs are spot VMs
    bucket = "my-project-burla"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from burla.core.errors import InvalidRequestError

Backend = Literal["local", "docker", "gcp"]
JOB_TOKEN_ENV = "BURLA_JOB_TOKEN"
# Plain dataclasses, not pydantic: the client reads these inside workers too (a function
# that calls remote_parallel_map), where only the user's own packages may be importable.


@dataclass(frozen=True)
class GcpSettings:
    """A cluster on Google Cloud: Firestore, Cloud Storage and Compute Engine in one project."""

    project: str | None = None
    zone: str = "us-central1-a"
    machine_type: str = "n2-standard-4"
    """The node type of the standby set: a Compute Engine machine type."""
    spot: bool = False
    """The standby set's VMs are spot VMs: cheaper, and Compute Engine may preempt one at
    any time (its inputs run again on other nodes). BURLA_GCP_SPOT takes true or false."""
    standby_nodes: int = 1
    bucket: str | None = None
    """Cloud Storage bucket for functions, big inputs and results (default: <project>-burla)."""
    cluster: str = "burla"
    """Names the cluster's VMs, labels, Firestore namespace and blob prefix."""
    source_image: str = "projects/debian-cloud/global/images/family/debian-12"
    containers: str = "docker"
    """What the nodes' workers run in: Docker containers of the standby images (one per
    CPU per image, as the seed keeps them), or "process" (processes of node_service)."""
    registry: str | None = None
    """The Docker registry the nodes pull images from and custom images are pushed to
    (default: Artifact Registry's <region>-docker.pkg.dev/<project>/burla)."""
    registry_login: str = "google"
    """How main_service and the nodes log in to the registry: "google" (an access token of
    main_service's application default credentials and of each VM's service account, as
    Artifact Registry takes) or "none" (the Docker engine's own configuration)."""
    pythons: str = "3.11"
    """The Python versions, comma-separated, whose default images every node keeps (one
    container per CPU each): a caller runs in the one of its own version."""

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Settings:
    backend: Backend = "local"
    """local: processes on this machine; docker: the same with Docker containers;
    gcp: the cluster at `main_url`, on Google Cloud."""
    main_url: str | None = None
    main_cert_sha256: str | None = None
    """The SHA-256 fingerprint of main_service's own TLS certificate, which the client
    pins for an https:// main_url (`burla deploy` and `burla login` write it)."""
    token: str | None = None
    job_token: str | None = None
    """Set by a worker for the job it runs: a call from inside the job goes to the
    job's own cluster as the job's owner, with this token (see JOB_TOKEN_ENV)."""
    jobs_file: str | None = None
    """Where the client remembers the jobs it starts, for `burla jobs --mine` (default
    ~/.burla/jobs.jsonl)."""
    gcp: GcpSettings = field(default_factory=GcpSettings)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def settings_from(env: Mapping[str, str], file_text: str | None, source: str = "") -> Settings:
    """Settings from a config file's text (or None) and environment variables."""
    where = source or "the config file"
    values: dict[str, Any] = {}
    if file_text is not None:
        try:
            values = tomllib.loads(file_text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidRequestError(f"{where} is not TOML: {error}") from None
    gcp = dict(values.pop("gcp", None) or {})
    for name in _fields(Settings):
        if name != "gcp" and (value := env.get(f"BURLA_{name.upper()}")):
            values[name] = value
    for name in _fields(GcpSettings):
        if value := env.get(f"BURLA_GCP_{name.upper()}"):
            gcp[name] = value
    top = _checked(Settings, values, f"{where} or BURLA_*")
    top["gcp"] = GcpSettings(**_checked(GcpSettings, gcp, f"[gcp] in {where} or BURLA_GCP_*"))
    backend = top.get("backend", "local")
    if backend not in get_args(Backend):
        raise InvalidRequestError(
            f"unknown backend {backend!r} (from {where} or BURLA_BACKEND); "
            f"choose one of {', '.join(get_args(Backend))}"
        )
    return Settings(**top)


def _fields(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _checked(cls: type[Any], values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` with each field of `cls` turned into its type; unknown names are errors."""
    unknown = sorted(set(values) - set(_fields(cls)))
    if unknown:
        raise InvalidRequestError(
            f"unknown setting {unknown[0]!r} in {where}; known: {', '.join(_fields(cls))}"
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
        if isinstance(default, bool):
            value = _flag(value, name, where)
        elif isinstance(default, int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise InvalidRequestError(
                    f"setting {name!r} in {where} must be a whole number, not {value!r}"
                ) from None
            if value < 0:
                raise InvalidRequestError(f"setting {name!r} in {where} must be 0 or more")
        elif not isinstance(value, str):
            raise InvalidRequestError(f"setting {name!r} in {where} must be text, not {value!r}")
        checked[name] = value
    return checked


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _flag(value: Any, name: str, where: str) -> bool:
    """A yes-or-no setting: a TOML boolean, or true/false (1/0, yes/no) from a variable."""
    if isinstance(value, bool):
        return value
    flag = _FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise InvalidRequestError(
            f"setting {name!r} in {where} must be true or false, not {value!r}"
        )
    return flag


def config_path(env: Mapping[str, str]) -> Path:
    return Path(env.get("BURLA_CONFIG") or Path.home() / ".burla" / "config.toml")


def file_stamp(path: Path) -> tuple[int, ...] | None:
    """A cheap mark of a file that changes whenever it is rewritten or replaced, or None
    if there is no file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


_loaded: tuple[tuple[Any, ...], Settings] | None = None
"""The settings last read from os.environ, and what they were read from."""
_VARIABLES = (
    "HOME",
    "BURLA_CONFIG",
    *(f"BURLA_{name.upper()}" for name in _fields(Settings) if name != "gcp"),
    *(f"BURLA_GCP_{name.upper()}" for name in _fields(GcpSettings)),
)
"""Every variable the settings are read from (HOME finds the default config file)."""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """This process's settings: the config file, if there is one, then the environment.

    Every call of remote_parallel_map asks, so without `env` the answer is kept until the
    config file or a BURLA_ variable changes."""
    global _loaded
    if env is not None:
        return _read_settings(env)
    variables = tuple(map(os.environ.get, _VARIABLES))
    if _loaded is None or _loaded[0][0] != variables:
        path = config_path(os.environ)
    else:
        path = _loaded[0][1]
    key = (variables, path, file_stamp(path))
    if _loaded is None or _loaded[0] != key:
        _loaded = (key, _read_settings(os.environ))
    return _loaded[1]


def _read_settings(env: Mapping[str, str]) -> Settings:
    path = config_path(env)
    try:
        text: str | None = path.read_text()
    except FileNotFoundError:
        text = None
    return settings_from(env, text, str(path))
