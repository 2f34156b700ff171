"""Where main_service reaches a node: the address node_service reports when it boots."""

from __future__ import annotations

from pathlib import Path

from burla.core.models import NodeType
from burla.services.node_service.__main__ import NodeSettings, advertised_host


def settings(**changes: object) -> NodeSettings:
    base = {
        "node_id": "node-1",
        "node_type": NodeType(name="n", cpus=2, ram_gb=8),
        "main_url": "http://127.0.0.1:9",
        "node_dir": Path("/nonexistent"),
        "store_url": "firestore://p/ns",
        "blobs_url": "gs://b/ns",
        "secret": "00",
        "local_dir": Path("/nonexistent"),
    }
    return NodeSettings.model_validate({**base, **changes})


def test_a_node_on_loopback_reports_loopback() -> None:
    assert advertised_host(settings()) == "127.0.0.1"


def test_an_advertised_host_wins() -> None:
    assert advertised_host(settings(host="0.0.0.0", advertise_host="10.1.2.3")) == "10.1.2.3"


def test_a_node_on_every_interface_reports_the_one_facing_main_service() -> None:
    # main_service is on loopback here, so the route to it leaves by loopback.
    assert advertised_host(settings(host="0.0.0.0")) == "127.0.0.1"
