"""A cluster that removed a package this process sent as source before says so
(SourceNotKeptError): the client sends its sources again and submits once more."""

from __future__ import annotations

from typing import Any

import pytest

from burla.client import map as client_map
from burla.core.errors import SourceNotKeptError


class FakeSession:
    def __init__(self) -> None:
        self.sent_sources = {"mypkg==1.0+src.abc"}


def test_sources_the_cluster_no_longer_has_are_sent_again_once(monkeypatch):
    session = FakeSession()
    uploads: list[set[str]] = []
    submissions: list[dict[str, Any]] = []

    def with_environment(spec: dict[str, Any], *args: Any) -> FakeSession:
        uploads.append(set(session.sent_sources))  # what the session thinks the cluster has
        return session

    def submitted(
        session: FakeSession, settings: Any, job_id: str, spec: dict[str, Any], *args: Any
    ):
        submissions.append(spec)
        if len(submissions) == 1:
            raise SourceNotKeptError("mypkg ... the cluster does not have it (any more)")
        return session, None

    monkeypatch.setattr(client_map, "_with_environment", with_environment)
    monkeypatch.setattr(client_map, "_submitted", submitted)
    monkeypatch.setattr(client_map, "follow", lambda *args, **kwargs: iter([1, 4]))
    assert client_map.remote_parallel_map(abs, [1, -2], spinner=False) == [1, 4]
    assert uploads == [{"mypkg==1.0+src.abc"}, set()]  # the second time, every source goes
    assert len(submissions) == 2


def test_a_second_refusal_is_the_callers_error(monkeypatch):
    session = FakeSession()

    def submitted(*args: Any) -> None:
        raise SourceNotKeptError("still missing")

    monkeypatch.setattr(client_map, "_with_environment", lambda *args: session)
    monkeypatch.setattr(client_map, "_submitted", submitted)
    with pytest.raises(SourceNotKeptError, match="still missing"):
        client_map.remote_parallel_map(abs, [1], spinner=False)
