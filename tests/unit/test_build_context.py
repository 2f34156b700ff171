"""A Dockerfile's build context: archived the same way each time, and handed to the engine
with the Dockerfile beside the caller's files."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from burla.backends.docker.custom import CONTEXT_DOCKERFILE, dockerfile_tag, with_dockerfile
from burla.client.build_context import context_archive
from burla.core.errors import ImageError, InvalidRequestError


def members(archive: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tar
        }


def make_context(root: Path) -> Path:
    (root / "app" / "data").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "app" / "data" / "table.csv").write_text("a,b\n1,2\n")
    os.symlink("main.py", root / "app" / "entry.py")
    return root / "app"


def test_the_same_files_make_the_same_archive(tmp_path: Path) -> None:
    directory = make_context(tmp_path)
    first = context_archive(str(directory))
    assert context_archive(str(directory)) == first
    assert members(first) == {
        "data": None,
        "data/table.csv": b"a,b\n1,2\n",
        "entry.py": None,  # a symlink stays one
        "main.py": b"print('hi')\n",
    }
    (directory / "main.py").write_text("print('changed')\n")
    assert context_archive(str(directory)) != first


def test_a_context_that_is_no_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="is not a directory"):
        context_archive(str(tmp_path / "missing"))


def test_the_engine_gets_the_files_and_the_dockerfile(tmp_path: Path) -> None:
    archive = context_archive(str(make_context(tmp_path)))
    built = members(with_dockerfile(archive, "FROM scratch\nCOPY . /app\n"))
    assert built[CONTEXT_DOCKERFILE] == b"FROM scratch\nCOPY . /app\n"
    assert built["data/table.csv"] == b"a,b\n1,2\n"
    with pytest.raises(ImageError, match="not a gzipped tar"):
        with_dockerfile(b"not an archive", "FROM scratch\n")


def test_an_image_is_tagged_by_its_dockerfile_and_context() -> None:
    text = "FROM x\n"
    assert dockerfile_tag(text) == dockerfile_tag(text)
    assert dockerfile_tag(text, b"one") != dockerfile_tag(text)
    assert dockerfile_tag(text, b"one") != dockerfile_tag(text, b"two")
    assert dockerfile_tag(text, b"one") == dockerfile_tag(text, b"one")
