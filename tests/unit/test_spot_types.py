"""Spot node types: where a node type is said to be spot (standby definitions, [gcp]
settings, burla deploy's settings, scenarios), and that it is priced at spot rates."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from pydantic import ValidationError

from burla.backends.gcp.gce_boot import scheduling
from burla.backends.gcp.prices import hourly_price, list_price_in
from burla.core.cost import estimate, price_of
from burla.core.errors import InvalidRequestError
from burla.core.models import JobSpec, NodeType, StandbyDefinition
from burla.core.settings import settings_from
from burla.deploy.main_vm import config_text
from burla.deploy.options import DeployOptions
from burla.services.main_service.cloud_config import cluster_config
from burla.sim import scenario

N2_8 = NodeType(name="n2-standard-8", cpus=8, ram_gb=32)


def test_a_standby_definition_mixes_spot_and_on_demand_node_types() -> None:
    definition = StandbyDefinition.model_validate(
        {
            "nodes": [
                {"node_type": {"name": "e2-standard-4", "cpus": 4, "ram_gb": 16}, "count": 1},
                {
                    "node_type": {"name": "n2-standard-8", "cpus": 8, "ram_gb": 32, "spot": True},
                    "count": 4,
                },
            ]
        }
    )
    spot = {group.node_type.name: group.node_type.spot for group in definition.nodes}
    assert spot == {"e2-standard-4": False, "n2-standard-8": True}
    # What `burla standby show --json` prints is what `burla standby set` reads back.
    again = StandbyDefinition.model_validate(definition.model_dump(mode="json"))
    assert again == definition
    assert "spot" in definition.nodes[1].node_type.describe()


def test_spot_must_be_true_or_false() -> None:
    with pytest.raises(ValidationError, match="spot"):
        NodeType.model_validate({"name": "n2-standard-8", "cpus": 8, "ram_gb": 32, "spot": "maybe"})


@pytest.mark.parametrize(
    ("env", "text", "spot"),
    [
        ({}, None, False),
        ({}, "[gcp]\nspot = true\n", True),
        ({"BURLA_GCP_SPOT": "true"}, None, True),
        ({"BURLA_GCP_SPOT": "0"}, "[gcp]\nspot = true\n", False),
    ],
)
def test_gcp_settings_say_whether_the_standby_vms_are_spot(
    env: dict[str, str], text: str | None, spot: bool
) -> None:
    assert settings_from(env, text).gcp.spot is spot


def test_a_spot_setting_that_is_not_yes_or_no_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"'spot' in .* must be true or false"):
        settings_from({"BURLA_GCP_SPOT": "sometimes"}, None)


def test_a_cloud_cluster_of_spot_settings_keeps_spot_standby_nodes() -> None:
    gcp = settings_from({}, '[gcp]\nmachine_type = "n2-standard-8"\nspot = true\n').gcp
    config = cluster_config(gcp, None, None, None)
    [group] = config.standby.nodes
    assert group.node_type.spot
    assert config.node_types == (group.node_type,)


def test_burla_deploy_writes_spot_into_main_services_settings() -> None:
    options = DeployOptions(project="p", region="us-central1", spot=True)
    written = tomllib.loads(config_text(options))
    assert written["gcp"]["spot"] is True
    assert settings_from({}, config_text(options)).gcp.spot


def test_a_spot_node_type_is_priced_at_spot_rates_for_jobs_and_estimates() -> None:
    spot_type = N2_8.model_copy(update={"spot": True})
    list_price = list_price_in("us-central1")
    spot = price_of(spot_type, list_price)
    on_demand = price_of(N2_8, list_price)
    listed = hourly_price("n2-standard-8", "us-central1", spot=True)
    assert spot.usd_per_hour == getattr(listed, "usd_per_hour", None)
    assert spot.usd_per_hour is not None
    assert on_demand.usd_per_hour is not None
    assert spot.usd_per_hour < on_demand.usd_per_hour
    job = JobSpec(job_id="j", n_inputs=800, seconds_per_input=60)
    cheap = estimate(job, spot_type, 10, 60, spot)
    dear = estimate(job, N2_8, 10, 60, on_demand)
    assert cheap.node_seconds == dear.node_seconds
    assert cheap.usd is not None
    assert dear.usd is not None
    assert cheap.usd < dear.usd
    # A node type's own price_per_hour still comes first, spot or not.
    priced = spot_type.model_copy(update={"price_per_hour": 0.5})
    assert price_of(priced, list_price).usd_per_hour == 0.5


def test_spot_vms_are_scheduled_as_compute_engine_requires() -> None:
    spot = scheduling(N2_8.model_copy(update={"spot": True}))
    assert (spot.provisioning_model, spot.instance_termination_action) == ("SPOT", "STOP")
    assert (spot.automatic_restart, spot.on_host_maintenance) == (False, "TERMINATE")
    standard = scheduling(N2_8)
    assert (standard.provisioning_model, standard.automatic_restart) == ("STANDARD", True)
    assert standard.on_host_maintenance == "MIGRATE"
    assert "instance_termination_action" not in standard
    gpu = scheduling(N2_8.model_copy(update={"gpus": 1}))
    assert gpu.on_host_maintenance == "TERMINATE"


def test_a_scenario_preempts_only_spot_node_types() -> None:
    base: dict[str, Any] = {
        "name": "s",
        "images": [{"image": "burla/default:py3.11"}],
        "node_types": [{"name": "n2-standard-8", "cpus": 8, "ram_gb": 32}],
    }
    base["node_types"][0]["preemptions_per_hour"] = 2.0
    with pytest.raises(InvalidRequestError, match="is not spot; set spot: true"):
        scenario.parse(json.dumps(base), json_text=True)
    base["node_types"][0]["spot"] = True
    found = scenario.parse(json.dumps(base), json_text=True)
    assert found.node_types[0].node_type().spot
    assert found.cluster_config().node_types[0].spot
