"""What Compute Engine machines cost per hour at list price, from burla's price table.

GPUs, boot disks and network are not priced (see price_table).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from burla.backends.gcp.machine_types import node_type_of
from burla.backends.gcp.price_table import (
    CUSTOM,
    CUSTOM_FAMILIES,
    MEMORY_IN_VCPU_RATE,
    PREDEFINED,
    PRICES_READ_ON,
    RegionRates,
)
from burla.core.cost import ListPrice, NodePrice
from burla.core.errors import InvalidRequestError
from burla.core.models import NodeType

__all__ = [
    "PRICES_READ_ON",
    "ClusterCost",
    "NoListPrice",
    "Price",
    "cluster_cost",
    "hourly_price",
    "list_price_in",
]

_REGION = re.compile(r"[a-z]+-[a-z]+\d+")
_ZONE = re.compile(r"(?P<region>[a-z]+-[a-z]+\d+)-[a-z]")
_CUSTOM = re.compile(r"(?:(?P<family>[a-z][a-z0-9]*)-)?custom-\d+-\d+(?P<extended>-ext)?")


@dataclass(frozen=True)
class Price:
    """One machine's hour at list price, and how it was reckoned."""

    usd_per_hour: float
    source: str
    """E.g. "n2 on-demand list price in us-central1 of 2026-07-30: 8 vCPU x $0.031611 +
    32 GB x $0.004237"."""


@dataclass(frozen=True)
class NoListPrice:
    """The table has no list price for a machine type in a region; `reason` says why."""

    reason: str


def hourly_price(machine_type: str, region: str, *, spot: bool = False) -> Price | NoListPrice:
    """What one `machine_type` VM costs per hour in `region`, on-demand or spot.

    Raises InvalidRequestError for a machine type burla cannot size or a region that is
    not one (a zone, say)."""
    _check_region(region)
    node = node_type_of(machine_type)
    custom = _CUSTOM.fullmatch(machine_type)
    # A custom type without a family prefix (custom-8-30720) is an n1 one.
    family = (custom["family"] or "n1") if custom else machine_type.split("-", 1)[0]
    found = _region_rates(family, region, custom is not None, bool(custom and custom["extended"]))
    if isinstance(found, NoListPrice):
        return found
    rates = found.spot if spot else found.on_demand
    kind = "custom " if custom else ""
    bought = "spot" if spot else "on-demand"
    source = f"{kind}{family} {bought} list price in {region} of {PRICES_READ_ON.isoformat()}: "
    vcpus = f"{node.cpus} vCPU x ${rates.vcpu}"
    if rates.gb is not None:
        usd = node.cpus * rates.vcpu + node.ram_gb * rates.gb
        return Price(usd, f"{source}{vcpus} + {node.ram_gb:g} GB x ${rates.gb}")
    gb_per_vcpu = MEMORY_IN_VCPU_RATE[family]
    if abs(node.ram_gb - node.cpus * gb_per_vcpu) > 0.01:
        return NoListPrice(
            f"no list price for {machine_type} in {region}: burla's price table prices "
            f"{family} only with {gb_per_vcpu:g} GB per vCPU (its standard types)"
        )
    return Price(node.cpus * rates.vcpu, f"{source}{vcpus} (with {gb_per_vcpu:g} GB each)")


def _check_region(region: str) -> None:
    if zone := _ZONE.fullmatch(region):
        raise InvalidRequestError(
            f"{region!r} is a zone; ask for the price in its region, {zone['region']!r}"
        )
    if not _REGION.fullmatch(region):
        raise InvalidRequestError(
            f"{region!r} is not a Compute Engine region; name one like 'us-central1'"
        )


def _region_rates(
    family: str, region: str, custom: bool, extended: bool
) -> RegionRates | NoListPrice:
    kind = "custom " if custom else ""
    table = CUSTOM if custom else PREDEFINED
    missing = f"no list price for {kind}{family} in {region}"
    if custom and family in PREDEFINED and family not in CUSTOM_FAMILIES:
        return NoListPrice(f"{missing}: Compute Engine sells no custom {family} machine types")
    if extended:
        return NoListPrice(f"{missing}: burla's price table lacks extended memory's rates")
    if family not in table:
        known = ", ".join(sorted(table))
        return NoListPrice(f"{missing}: burla's price table has {kind}{known} only")
    if region not in table[family]:
        known = ", ".join(table[family])
        return NoListPrice(f"{missing}: burla's price table has {known} only")
    return table[family][region]


@dataclass(frozen=True)
class ClusterCost:
    """What a cluster's nodes cost per hour at list price."""

    region: str
    by_type: Mapping[str, tuple[int, Price | NoListPrice]]
    """Per machine type: how many nodes, and one node's price."""
    spot: frozenset[str] = frozenset()
    """The machine types whose nodes are spot VMs (priced at spot rates)."""

    @property
    def usd_per_hour(self) -> float | None:
        """The cluster's total, or None when some node has no list price."""
        if self.unpriced:
            return None
        return self.priced_usd_per_hour

    @property
    def priced_usd_per_hour(self) -> float:
        """What the nodes that have a list price cost together."""
        return sum(n * p.usd_per_hour for n, p in self.by_type.values() if isinstance(p, Price))

    @property
    def unpriced(self) -> dict[str, str]:
        """The machine types of nodes without a list price, and why."""
        return {t: p.reason for t, (_, p) in self.by_type.items() if isinstance(p, NoListPrice)}

    @property
    def basis(self) -> str:
        spot = sorted(self.spot & self.by_type.keys())
        if not spot:
            bought = "on-demand"
        elif len(spot) == len(self.by_type):
            bought = "spot"
        else:
            bought = f"spot for {', '.join(spot)}, on-demand for the others"
        return f"list prices of {PRICES_READ_ON.isoformat()}, {bought}, {self.region}"


def cluster_cost(
    nodes: Mapping[str, int], region: str, *, spot: Collection[str] = ()
) -> ClusterCost:
    """The cost of `nodes` (how many VMs of each machine type) in `region`, those of the
    machine types in `spot` at spot rates. A machine type burla cannot size has no list
    price, rather than an error: the cluster runs it."""
    by_type: dict[str, tuple[int, Price | NoListPrice]] = {}
    for machine_type, count in nodes.items():
        try:
            price = hourly_price(machine_type, region, spot=machine_type in spot)
        except InvalidRequestError as error:
            price = NoListPrice(str(error))
        by_type[machine_type] = (count, price)
    return ClusterCost(region, by_type, frozenset(spot))


def list_price_in(region: str) -> ListPrice:
    """The price of a cloud cluster's node types (whose names are machine types) in
    `region`, on-demand or spot as each node type is, for jobs' costs: the list price, or
    none with the reason."""

    def price(node_type: NodeType) -> NodePrice:
        try:
            found = hourly_price(node_type.name, region, spot=node_type.spot)
        except InvalidRequestError as error:
            return NodePrice(None, str(error))
        if isinstance(found, NoListPrice):
            return NodePrice(None, found.reason)
        return NodePrice(found.usd_per_hour, f"Compute Engine {found.source}")

    return price
