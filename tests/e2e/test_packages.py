"""Environment replication on a real local cluster: a package of the caller's venv that the
workers lack is installed once, then linked into the workers of every job that needs it."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import anyio
import pytest

from burla import InvalidRequestError, PackageInstallError, remote_parallel_map
from burla.backends.local.envs import ensure_worker_env
from burla.backends.urls import open_store
from burla.client.map import Session
from burla.core.clock import WallClock
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.models import DEFAULT_PYTHON_VERSION
from tests.e2e.test_cli import burla_json

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]

PACKAGE = PythonPackage(name="iniconfig", version=importlib.metadata.version("iniconfig"))
"""Small, pure Python, in the test venv (pytest needs it) and not among the workers'."""


def parses_ini(text: str) -> dict[str, str]:
    import iniconfig

    return dict(iniconfig.IniConfig("job.ini", data=text)["section"].items())


def store_doc_version(local_dir: Path, key: str) -> int | None:
    async def read() -> int | None:
        store = open_store(f"sqlite://{local_dir / 'store.db'}", WallClock())
        doc = await store.get(key)
        return doc.version if doc is not None else None

    return anyio.run(read)


def test_a_package_the_workers_lack_is_installed_once_and_reused(local_dir: Path) -> None:
    worker_python = ensure_worker_env(local_dir)
    lacking = subprocess.run([worker_python, "-c", "import iniconfig"], capture_output=True)
    assert lacking.returncode != 0, "the default worker environment must not have iniconfig"

    inputs = ["[section]\nkey = one\n", "[section]\nkey = two\n"]
    assert remote_parallel_map(parses_ini, inputs, spinner=False) == [
        {"key": "one"},
        {"key": "two"},
    ]
    key = package_blob_key(PACKAGE, DEFAULT_PYTHON_VERSION, sysconfig.get_platform())
    archive = local_dir / "blobs" / key
    unpacked = local_dir / "packages" / "unpacked" / key.removeprefix("packages/")
    unpacked = unpacked.with_name(unpacked.name.removesuffix(".tar.gz"))
    built = (archive.stat().st_mtime_ns, store_doc_version(local_dir, key))
    unpacked_inode = unpacked.stat().st_ino

    # A new client process would find the same; this one drops its cached session too.
    Session.close_all()
    assert remote_parallel_map(parses_ini, inputs[:1], spinner=False) == [{"key": "one"}]
    assert (archive.stat().st_mtime_ns, store_doc_version(local_dir, key)) == built
    assert unpacked.stat().st_ino == unpacked_inode


def test_a_job_without_packages_does_not_see_an_earlier_jobs_packages() -> None:
    remote_parallel_map(parses_ini, ["[section]\nk = v\n"], spinner=False)

    def has_iniconfig(_: int) -> bool:
        import importlib.util

        name = "-".join(["ini", "config"]).replace("-", "")  # not named in the pickle
        return importlib.util.find_spec(name) is not None

    assert remote_parallel_map(has_iniconfig, [0, 1], spinner=False) == [False, False]


def test_a_package_that_cannot_be_installed_fails_the_job_before_it_runs(local_dir: Path) -> None:
    session = Session.for_local_cluster()
    missing = {"name": "burla-test-no-such-package", "version": "0.0.1"}
    spec = {"n_inputs": 1, "packages": [missing, dataclasses.asdict(PACKAGE)]}
    function = b"never unpickled"
    with pytest.raises(PackageInstallError) as raised:
        session.submit("job-uninstallable-0001", spec, function, [b"input"], wait=0)
    message = str(raised.value)
    assert "burla-test-no-such-package==0.0.1" in message
    assert "pip said" in message
    assert "No matching distribution" in message
    assert "iniconfig" not in message  # it installs fine; only the culprit is named


def test_a_job_from_another_python_is_refused_with_the_reason() -> None:
    session = Session.for_local_cluster()
    spec = {"n_inputs": 1, "python_version": "3.99"}
    refused = r"keeps no default image for Python 3\.99 \(it has Python 3\.\d+\)"
    with pytest.raises(InvalidRequestError, match=refused):
        session.submit("job-other-python-0001", spec, b"never unpickled", [b"input"], wait=0)


EDITABLE_CLIENT = """
import mylib_burla_test  # the user's editable package, imported as their code does
from burla import remote_parallel_map

def uses_mylib(x):
    import locallib_burla_test  # installed from a directory: no index has it
    import mylib_burla_test  # imported again on the worker: it must be there

    return mylib_burla_test.VALUE + locallib_burla_test.SUFFIX

print(remote_parallel_map(uses_mylib, [1, 2], spinner=False))
"""


def venv_with_editable_install(root: Path) -> tuple[Path, Path]:
    """A user's venv (with this venv's packages) holding an editable install of a project
    of theirs, made as pip makes one: a .pth naming the project, a dist-info whose
    direct_url.json says editable; and a package installed from a local directory. Its
    python, and the editable project's module directory."""
    project = root / "project"
    module = project / "mylib_burla_test"
    module.mkdir(parents=True)
    env = root / "venv"
    venv.create(env, with_pip=False, symlinks=True)
    site_packages = Path(sysconfig.get_path("purelib", scheme="venv", vars={"base": str(env)}))
    ours = sysconfig.get_path("purelib")
    (site_packages / "with-test-venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    (site_packages / "mylib_burla_test.pth").write_text(f"{project}\n")
    dist_info = site_packages / "mylib_burla_test-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mylib-burla-test\nVersion: 1.0\n"
    )
    (dist_info / "RECORD").write_text("")
    origin = {"url": project.as_uri(), "dir_info": {"editable": True}}
    (dist_info / "direct_url.json").write_text(json.dumps(origin))

    installed = site_packages / "locallib_burla_test"  # `pip install ./locallib`
    installed.mkdir()
    (installed / "__init__.py").write_text("SUFFIX = '!'\n")
    dist_info = site_packages / "locallib_burla_test-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: locallib-burla-test\nVersion: 0.1\n"
    )
    (dist_info / "RECORD").write_text("locallib_burla_test/__init__.py,,\n")
    origin = {"url": (root / "locallib").as_uri(), "dir_info": {}}
    (dist_info / "direct_url.json").write_text(json.dumps(origin))
    return env / "bin" / "python", module


def test_editable_and_local_installs_are_sent_as_source_and_can_be_imported_remotely(
    local_dir: Path, tmp_path: Path
) -> None:
    python, module = venv_with_editable_install(tmp_path)
    script = tmp_path / "client.py"
    script.write_text(EDITABLE_CLIENT)
    environment = {**os.environ, "BURLA_LOCAL_DIR": str(local_dir)}
    for value in ("first", "second"):  # an edit is sent again
        (module / "__init__.py").write_text(f"VALUE = {value!r}\n")
        ran = subprocess.run(
            [python, script], env=environment, capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == repr([value + "!", value + "!"])


def test_prune_frees_the_unpacked_packages_and_a_later_job_unpacks_them_again(
    local_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = ["[section]\nkey = one\n"]
    assert remote_parallel_map(parses_ini, inputs, spinner=False) == [{"key": "one"}]
    unpacked = local_dir / "packages" / "unpacked"
    assert any(unpacked.glob("*/*/iniconfig-*"))

    answer = burla_json(capsys, "local", "prune", "--max-gb", "0")
    assert answer["nodes"]
    assert all(answer["nodes"].values())
    assert not any(unpacked.glob("*/*/iniconfig-*"))
    assert not any((local_dir / "packages" / "envs").iterdir())

    assert remote_parallel_map(parses_ini, inputs, spinner=False) == [{"key": "one"}]
    assert any(unpacked.glob("*/*/iniconfig-*"))  # from the blob store again
