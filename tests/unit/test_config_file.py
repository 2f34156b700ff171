"""The client's config file, changed in place by `burla login` and `burla deploy`, and the
login strings they take: what is written reads back as burla's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from burla.client.config_file import update_config
from burla.client.login import Login
from burla.core.errors import CertificateError, InvalidRequestError
from burla.core.settings import settings_from


def test_settings_written_read_back_and_others_stay(tmp_path: Path) -> None:
    path = tmp_path / "burla" / "config.toml"
    path.parent.mkdir()
    path.write_text('token = "old"\n\n[gcp]\nproject = "p"\nstandby_nodes = 2\n')
    odd = 'quote " backslash \\ tab \t ünïcode 😀'
    update_config(path, {"main_url": "https://10.0.0.9:8080", "token": odd}, {"zone": "z-a"})
    settings = settings_from({}, path.read_text())
    assert (settings.main_url, settings.token) == ("https://10.0.0.9:8080", odd)
    assert (settings.gcp.project, settings.gcp.standby_nodes, settings.gcp.zone) == ("p", 2, "z-a")
    assert path.stat().st_mode & 0o077 == 0

    update_config(path, {"token": None}, {"project": None, "standby_nodes": None, "zone": None})
    assert path.read_text() == 'main_url = "https://10.0.0.9:8080"\n'


def test_a_file_that_is_not_toml_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(InvalidRequestError, match="not TOML"):
        update_config(path, {"token": "t"})
    assert path.read_text() == "this is = = not toml"


def test_a_login_string_round_trips() -> None:
    login = Login("https://34.1.2.3:8080", "tok-en", "ab" * 32)
    assert Login.decode("  " + login.encode() + "\n") == login
    plain = Login("http://127.0.0.1:4000", "t")
    assert Login.decode(plain.encode()) == plain


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("abc", "not a login string"),
        ("burla-login:1:eyJ1cmwi", "damaged"),
        (Login("ftp://x", "t").encode(), "no cluster URL"),
    ],
)
def test_what_is_not_a_login_string_says_so(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        Login.decode(text)


def test_a_login_string_with_a_bad_fingerprint_is_refused() -> None:
    with pytest.raises(CertificateError, match="64 hex digits"):
        Login.decode(Login("https://h:1", "t", "abc").encode())
