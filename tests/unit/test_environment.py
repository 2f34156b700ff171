"""The environment spec: which installed packages a pickled function needs."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import tarfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from burla.client.environment import environment_for
from burla.client.serialize import dumps_function
from burla.client.sources import editable_projects, pack
from burla.core.environment import (
    PythonPackage,
    canonical_name,
    environment_id,
    names_in_pickle,
    needed_packages,
    package_blob_key,
    requirement_name,
)
from burla.core.models import JobSpec


def imports_inside(x: int) -> str:
    import iniconfig

    return iniconfig.__name__ * x


def plain(x: int) -> int:
    return x + 1


def test_names_in_pickle_sees_globals_and_imports_inside_the_code() -> None:
    names = names_in_pickle(dumps_function(imports_inside))
    assert "iniconfig" in names
    assert "cloudpickle" in names  # how cloudpickle rebuilds functions
    assert not names & {"builtins", "copyreg", "sys"}  # the standard library is left out
    assert "collections" not in names_in_pickle(pickle.dumps(__import__("collections").Counter))


def test_requirement_names_skip_extras_and_are_canonical() -> None:
    assert (
        requirement_name("Typing_Extensions>=4.0; python_version < '3.13'") == "typing-extensions"
    )
    assert requirement_name('pytest ; extra == "test"') is None
    assert canonical_name("Foo.Bar__baz") == "foo-bar-baz"


def test_needed_packages_follow_requirements_and_leave_out_the_workers() -> None:
    installed = {"a": "1.0", "b": "2.0", "c": "3.0", "httpx": "0.28", "d": "4.0"}
    requires = {"a": ["b>=1", "httpx", "gone>1"], "b": ["c ; extra == 'x'"], "httpx": ["d"]}
    found = needed_packages(
        ["a_module", "unknown"],
        {"a_module": ["A"], "unrelated": ["d"]},
        installed,
        requires,
        provided={"httpx"},
    )
    assert found == (PythonPackage(name="a", version="1.0"), PythonPackage(name="b", version="2.0"))


def test_package_keys_and_environment_ids() -> None:
    package = PythonPackage(name="iniconfig", version="2.3.1")
    assert package.requirement == "iniconfig==2.3.1"
    key = package_blob_key(package, "3.11", "linux-x86_64")
    assert key == "packages/py3.11/linux-x86_64/iniconfig-2.3.1.tar.gz"
    assert environment_id([key, "b"]) == environment_id(["b", key])
    assert environment_id([key]) != environment_id([key, "b"])
    with pytest.raises(ValueError, match="not a canonical package name"):
        PythonPackage(name="../etc", version="1")
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"job_id": "j", "n_inputs": 1, "packages": [{"name": "A"}]})
    job = JobSpec.model_validate(
        {"job_id": "j", "n_inputs": 1, "packages": [dataclasses.asdict(package)]}
    )
    assert job.packages == (package,)


def test_the_client_asks_only_for_what_the_function_uses() -> None:
    assert environment_for(dumps_function(plain)).packages == ()
    found = environment_for(dumps_function(imports_inside)).packages
    assert [p.name for p in found] == ["iniconfig"]
    assert found[0].version == __import__("importlib.metadata").metadata.version("iniconfig")


def test_editable_projects_are_read_from_their_dist_info(tmp_path: Path) -> None:
    site_dir = tmp_path / "site-packages"
    for name, origin, top_level in [
        ("mylib-2.0", {"url": "file:///src/mylib", "dir_info": {"editable": True}}, None),
        ("pkgs-1.0", {"url": "file:///src/pkgs", "dir_info": {"editable": True}}, "a\nb\n"),
        ("local-1.0", {"url": "file:///src/local", "dir_info": {}}, None),  # not editable
        ("vcs-1.0", {"url": "https://x/y.git", "vcs_info": {"vcs": "git"}}, None),
    ]:
        dist_info = site_dir / f"{name}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "direct_url.json").write_text(json.dumps(origin))
        if top_level:
            (dist_info / "top_level.txt").write_text(top_level)
    found = sorted(editable_projects((str(site_dir),)))
    assert found == [
        ("mylib", "2.0", Path("/src/mylib"), frozenset({"mylib"})),
        ("pkgs", "1.0", Path("/src/pkgs"), frozenset({"a", "b"})),
    ]


def test_a_source_is_packed_again_only_when_a_file_changes(tmp_path: Path) -> None:
    package = tmp_path / "mylib"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("A = 1\n")
    (package / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    digest, archive = pack(package)
    assert pack(package) == (digest, archive)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames() == ["mylib/__init__.py"]
    (package / "__init__.py").write_text("A = 2\n")
    assert pack(package)[0] != digest


def test_names_are_found_without_walking_a_big_pickle_op_by_op() -> None:
    data = list(range(100_000))

    def captures_data(i: int) -> int:
        import iniconfig

        return data[i] + len(iniconfig.__name__)

    pickled = dumps_function(captures_data)
    assert len(pickled) > 300_000
    assert "iniconfig" in names_in_pickle(pickled)
    # A string opcode whose text runs into the next opcode's letters is cut at its length.
    assert names_in_pickle(b"\x8c\x09iniconfigN\x94.") == {"iniconfig"}
    assert names_in_pickle(b"\x8c\x05a b c\x94.") == set()
