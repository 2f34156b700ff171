"""List prices of Compute Engine machines: the price math, the table's own consistency, and
the reasons given where the table has no price."""

from __future__ import annotations

import datetime

import pytest

from burla.backends.gcp import price_table
from burla.backends.gcp.price_table import (
    CUSTOM,
    CUSTOM_FAMILIES,
    MEMORY_IN_VCPU_RATE,
    PREDEFINED,
)
from burla.backends.gcp.prices import (
    PRICES_READ_ON,
    NoListPrice,
    Price,
    cluster_cost,
    hourly_price,
    list_price_in,
)
from burla.core.errors import InvalidRequestError
from burla.core.models import NodeType

REGIONS = (
    "us-central1",
    "us-east1",
    "us-east4",
    "us-west1",
    "europe-west1",
    "europe-west4",
    "asia-east1",
)
FAMILIES = ("e2", "n2", "n2d", "n1", "c2", "c2d", "c3", "c3d", "n4", "t2d")


def usd(machine_type: str, region: str, *, spot: bool = False) -> float:
    price = hourly_price(machine_type, region, spot=spot)
    assert isinstance(price, Price), price
    return price.usd_per_hour


@pytest.mark.parametrize(
    ("machine_type", "region", "on_demand", "spot"),
    [
        # The source's own machine prices of 2026-07-30, which the rates must reproduce.
        ("n2-standard-8", "us-central1", 0.388472, 0.18424),
        ("n2-highmem-4", "europe-west4", 0.288456, 0.104872),
        ("n1-highcpu-8", "us-west1", 0.2833944, 0.0999568),
        ("e2-highcpu-16", "asia-east1", 0.45824832, 0.239504),
        ("c3d-highmem-8", "europe-west1", 0.53940688, 0.139056),
        ("n4-standard-4", "asia-east1", 0.210043056, 0.109976),
        ("c2-standard-8", "us-east4", 0.470288, 0.17832),
        ("t2d-standard-4", "europe-west1", 0.185892, 0.055608),
        ("custom-2-10240", "us-central1", 0.1108431, 0.03909),
    ],
)
def test_machine_prices_are_the_published_ones(machine_type, region, on_demand, spot):
    assert usd(machine_type, region) == pytest.approx(on_demand, rel=1e-6)
    assert usd(machine_type, region, spot=True) == pytest.approx(spot, rel=1e-6)


def test_a_standard_type_is_its_vcpus_and_memory():
    price = hourly_price("n2-standard-8", "us-central1")
    assert isinstance(price, Price)
    assert price.usd_per_hour == pytest.approx(8 * 0.031611 + 32 * 0.004237)
    assert "n2 on-demand list price in us-central1 of 2026-07-30" in price.source
    assert "8 vCPU x $0.031611 + 32 GB x $0.004237" in price.source


def test_highmem_costs_more_than_standard_and_highcpu_less():
    standard = usd("n2d-standard-16", "us-east4")
    assert usd("n2d-highmem-16", "us-east4") > standard > usd("n2d-highcpu-16", "us-east4")


def test_an_n1_custom_type_is_priced_at_custom_rates_with_or_without_its_prefix():
    price = usd("n1-custom-8-30720", "europe-west1")
    assert price == usd("custom-8-30720", "europe-west1")
    assert price == pytest.approx(8 * 0.03651165 + 30 * 0.00489405)
    # Custom vCPUs and memory cost more than predefined ones: 8 vCPUs and 30 GB of n1.
    assert price > 8 * 0.034773 + 30 * 0.004661


@pytest.mark.parametrize(
    ("machine_type", "reason"),
    [
        ("n2-custom-8-32768", "no list price for custom n2 in us-central1: burla's price table"),
        ("c3-custom-8-16384", "Compute Engine sells no custom c3 machine types"),
        ("n1-custom-2-15360-ext", "lacks extended memory's rates"),
    ],
)
def test_custom_types_without_figures_have_no_price(machine_type, reason):
    price = hourly_price(machine_type, "us-central1")
    assert isinstance(price, NoListPrice)
    assert reason in price.reason


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("region", REGIONS)
def test_spot_is_cheaper_than_on_demand(family, region):
    machine_type = f"{family}-standard-4"
    assert 0 < usd(machine_type, region, spot=True) < usd(machine_type, region)


def test_an_unknown_family_has_no_price_and_says_which_it_knows():
    price = hourly_price("c4-standard-8", "us-central1")
    assert isinstance(price, NoListPrice)
    assert price.reason.startswith("no list price for c4 in us-central1: ")
    assert "n2d" in price.reason


def test_an_unknown_region_has_no_price_and_says_which_it_knows():
    price = hourly_price("n2-standard-8", "me-west1", spot=True)
    assert isinstance(price, NoListPrice)
    assert price.reason.startswith("no list price for n2 in me-west1: ")
    assert "europe-west4" in price.reason


def test_a_fixed_memory_family_is_not_priced_at_another_memory():
    # c2 comes only with 4 GB per vCPU, so its rate includes that memory.
    price = hourly_price("c2-highmem-8", "us-central1")
    assert isinstance(price, NoListPrice)
    assert "4 GB per vCPU" in price.reason


@pytest.mark.parametrize(
    ("machine_type", "region", "message"),
    [
        ("n2-standard-8", "us-central1-a", "is a zone; ask for the price in its region"),
        ("n2-standard-8", "Iowa", "not a Compute Engine region"),
        ("e2-medium", "us-central1", "is not one burla can size"),
    ],
)
def test_what_is_not_a_machine_type_or_region_is_an_error(machine_type, region, message):
    with pytest.raises(InvalidRequestError, match=message):
        hourly_price(machine_type, region)


@pytest.mark.parametrize("table", [PREDEFINED, CUSTOM])
def test_every_rate_is_positive_and_spot_below_on_demand(table):
    for family, regions in table.items():
        for region, rates in regions.items():
            where = f"{family} in {region}"
            assert 0 < rates.spot.vcpu < rates.on_demand.vcpu, where
            if family in MEMORY_IN_VCPU_RATE:
                assert rates.on_demand.gb is None, where
                assert rates.spot.gb is None, where
            else:
                assert rates.on_demand.gb is not None, where
                assert rates.spot.gb is not None, where
                assert 0 < rates.spot.gb < rates.on_demand.gb, where
                # A vCPU costs more than a GB of memory in every family.
                assert rates.on_demand.gb < rates.on_demand.vcpu, where


def test_the_table_covers_the_families_and_regions_burla_runs_on():
    assert set(FAMILIES) <= set(PREDEFINED)
    for family in FAMILIES:
        assert set(REGIONS) <= set(PREDEFINED[family]), family
    assert set(CUSTOM) <= CUSTOM_FAMILIES <= set(PREDEFINED)


def test_the_table_says_when_and_where_its_prices_come_from():
    assert isinstance(PRICES_READ_ON, datetime.date)
    # Prices of this year, read on 2026-12-06: not later.
    assert datetime.date(2026, 1, 1) <= PRICES_READ_ON <= datetime.date(2026, 12, 6)
    assert price_table.__doc__ is not None
    assert PRICES_READ_ON.isoformat() in price_table.__doc__
    assert price_table.SOURCE_URL in price_table.__doc__


def test_a_cluster_costs_the_sum_of_its_nodes():
    cost = cluster_cost({"n2-standard-8": 3, "e2-standard-4": 1}, "us-east1")
    expected = 3 * usd("n2-standard-8", "us-east1") + usd("e2-standard-4", "us-east1")
    assert cost.usd_per_hour == pytest.approx(expected)
    assert cost.unpriced == {}
    assert cost.basis == "list prices of 2026-07-30, on-demand, us-east1"
    both = {"n2-standard-8", "e2-standard-4"}
    spot = cluster_cost({"n2-standard-8": 3, "e2-standard-4": 1}, "us-east1", spot=both)
    assert spot.basis == "list prices of 2026-07-30, spot, us-east1"
    assert spot.usd_per_hour is not None
    assert spot.usd_per_hour < expected
    mixed = cluster_cost(
        {"n2-standard-8": 3, "e2-standard-4": 1}, "us-east1", spot={"n2-standard-8"}
    )
    n2_spot = usd("n2-standard-8", "us-east1", spot=True)
    assert mixed.usd_per_hour == pytest.approx(3 * n2_spot + usd("e2-standard-4", "us-east1"))
    assert mixed.basis == (
        "list prices of 2026-07-30, spot for n2-standard-8, on-demand for the others, us-east1"
    )


def test_a_node_types_list_price_is_its_spot_price_when_it_is_spot():
    price = list_price_in("europe-west1")
    on_demand = NodeType(name="n2-standard-8", cpus=8, ram_gb=32)
    spot = on_demand.model_copy(update={"spot": True})
    assert price(on_demand).usd_per_hour == pytest.approx(usd("n2-standard-8", "europe-west1"))
    assert price(spot).usd_per_hour == pytest.approx(
        usd("n2-standard-8", "europe-west1", spot=True)
    )
    assert "n2 spot list price in europe-west1" in price(spot).source
    assert "n2 on-demand list price in europe-west1" in price(on_demand).source


def test_a_cluster_with_an_unpriced_node_has_no_total_but_says_why():
    cost = cluster_cost({"n2-standard-8": 2, "c4-standard-8": 1, "e2-medium": 1}, "us-central1")
    assert cost.usd_per_hour is None
    assert cost.priced_usd_per_hour == pytest.approx(2 * usd("n2-standard-8", "us-central1"))
    assert set(cost.unpriced) == {"c4-standard-8", "e2-medium"}
    assert "no list price for c4 in us-central1" in cost.unpriced["c4-standard-8"]
    assert "not one burla can size" in cost.unpriced["e2-medium"]
