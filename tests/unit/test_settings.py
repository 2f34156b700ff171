"""Settings from a config file and the environment, and what a client makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from burla import ClusterUnavailableError, InvalidRequestError, remote_parallel_map
from burla.core.settings import load_settings, settings_from

FILE = """
backend = "gcp"
main_url = "http://127.0.0.1:9"

[gcp]
project = "from-file"
zone = "europe-west4-b"
"""


def test_defaults_run_the_local_cluster() -> None:
    settings = settings_from({}, None)
    assert settings.backend == "local"
    assert settings.main_url is None
    assert settings.gcp.zone == "us-central1-a"


def test_the_environment_wins_over_the_file() -> None:
    env = {"BURLA_GCP_PROJECT": "from-env", "BURLA_TOKEN": "t", "BURLA_GCP_STANDBY_NODES": "3"}
    settings = settings_from(env, FILE)
    assert settings.backend == "gcp"
    assert settings.main_url == "http://127.0.0.1:9"
    assert settings.token == "t"
    assert settings.gcp.project == "from-env"
    assert settings.gcp.zone == "europe-west4-b"
    assert settings.gcp.region == "europe-west4"
    assert settings.gcp.standby_nodes == 3


def test_the_file_is_found_through_burla_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FILE)
    assert load_settings({"BURLA_CONFIG": str(path)}).gcp.project == "from-file"
    assert load_settings({"BURLA_CONFIG": str(tmp_path / "none.toml")}).backend == "local"


def test_this_process_settings_follow_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("BURLA_CONFIG", str(path))
    assert load_settings().backend == "local"
    path.write_text(FILE)
    assert load_settings().gcp.project == "from-file"
    path.write_text(FILE.replace("from-file", "edited"))
    assert load_settings().gcp.project == "edited"
    monkeypatch.setenv("BURLA_GCP_PROJECT", "from-env")
    assert load_settings().gcp.project == "from-env"
    monkeypatch.delenv("BURLA_GCP_PROJECT")
    path.unlink()
    assert load_settings().backend == "local"


@pytest.mark.parametrize(
    ("env", "text", "message"),
    [
        ({"BURLA_BACKEND": "moon"}, None, "backend"),
        ({}, "[gcp]\nzone_typo = 'x'", "zone_typo"),
        ({}, "backend = ", "not TOML"),
        ({"BURLA_GCP_STANDBY_NODES": "-1"}, None, "standby_nodes"),
    ],
)
def test_bad_settings_say_what_is_wrong(env: dict[str, str], text: str | None, message: str):
    with pytest.raises(InvalidRequestError, match=message):
        settings_from(env, text, "config.toml")


def test_an_unknown_backend_is_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidRequestError, match="unknown backend 'moon'; choose one of local"):
        remote_parallel_map(abs, [1], backend="moon")


def test_a_cloud_backend_without_a_cluster_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BURLA_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("BURLA_MAIN_URL", raising=False)
    with pytest.raises(ClusterUnavailableError, match="BURLA_MAIN_URL and BURLA_TOKEN"):
        remote_parallel_map(abs, [1], backend="gcp", spinner=False)
