"""main_service of this machine's cluster reads a command line of `local` flags without a
parser, and takes its directory and starts its first node's spare before anything else;
any other command line is left to the parser."""

from pathlib import Path

import pytest

from burla.services.main_service.local_start import LocalFlags, begin, read_local_flags


def test_local_flags_are_read_with_or_without_the_command_and_in_either_form():
    assert read_local_flags(
        ["local", "--local-dir", "d", "--cpus", "3", "--idle-s=2.5", "--detach"]
    ) == LocalFlags(Path("d"), cpus=3, idle_s=2.5, detach=True)
    flags = read_local_flags(["--local-dir=d", "--containers", "docker"])
    assert flags == LocalFlags(Path("d"), containers="docker")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["cloud", "--local-dir", "d"],
        ["--help"],
        ["local", "--help", "--local-dir", "d"],
        ["--cpus", "2"],
        ["--local-dir"],
        ["--local-dir", "d", "--cpus", "many"],
        ["--local-dir", "d", "--idle-s", "soon"],
        ["--local-dir", "d", "--containers", "podman"],
        ["--local-dir", "d", "--detach=yes"],
        ["--local-dir", "d", "--bogus", "1"],
    ],
)
def test_any_other_command_line_is_left_to_the_parser(argv: list[str]):
    assert read_local_flags(argv) is None


def test_one_main_service_takes_a_directory_and_starts_its_first_nodes_spare(tmp_path: Path):
    started = begin(tmp_path / "cluster", detach=False)
    assert started is not None
    try:
        assert started.root == (tmp_path / "cluster").resolve()
        assert started.spare.poll() is None, "the spare is not waiting for its node"
        assert begin(tmp_path / "cluster", detach=False) is None, "a second one took it too"
    finally:
        assert started.spare.stdin is not None
        started.spare.stdin.close()  # a spare with no node to be exits
        assert started.spare.wait(timeout=60) == 0
        started.lock.close()
    again = begin(tmp_path / "cluster", detach=False)
    assert again is not None, "the directory stayed taken after its main_service let go"
    assert again.spare.stdin is not None
    again.spare.stdin.close()
    again.spare.wait(timeout=60)
    again.lock.close()
