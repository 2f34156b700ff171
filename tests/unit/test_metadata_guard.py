"""Which address the guard of the metadata server keeps workers from."""

from __future__ import annotations

import pytest

from burla.core.errors import BackendError
from burla.services.node_service.metadata_guard import METADATA_IP, metadata_address


def test_compute_engines_own_server_unless_moved() -> None:
    assert metadata_address({}) == (METADATA_IP, 80)
    assert metadata_address({"GCE_METADATA_HOST": "metadata.google.internal"}) == (METADATA_IP, 80)
    moved = {"GCE_METADATA_HOST": "127.0.0.1:8123/vms/p/z/vm-1"}
    assert metadata_address(moved) == ("127.0.0.1", 8123)
    with pytest.raises(BackendError, match="names no address"):
        metadata_address({"GCE_METADATA_HOST": "no-such-host.invalid:80"})
