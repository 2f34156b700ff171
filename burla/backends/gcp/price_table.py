"""Compute Engine list prices (USD per hour) of a vCPU and a GB of memory, by family and region.

Source: Compute Engine's list prices as Google's Cloud Billing Catalog gave them on
2026-07-30, the prices https://cloud.google.com/compute/vm-instance-pricing and
https://cloud.google.com/spot-vms/pricing publish. Read on 2026-12-06 from a snapshot of
that catalog which prices every predefined machine type in every region:
https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator/blob/fd66b26ff84fee5cdd94f341ea89206e76c06b99/pricing.yml
The rates below are solved from those machine prices: per family and region, one vCPU rate
and one memory rate reproduce every standard, highmem and highcpu type, on-demand and spot.

Left out: regions other than the seven below, families other than the ten below, GPUs, boot
disks and network. Every family here is sold in every region here (c3 in asia-east1 in some
sizes only), per the catalog's machine type list of 2026-07-30. Spot prices are those of
that day; Google changes them up to once a month. Custom machine types are billed at rates
of their own: only n1's are known here (no figures were found for custom e2, n2, n2d and n4
types), and not their extended memory.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

PRICES_READ_ON = datetime.date(2026, 7, 30)
"""The day Google's catalog gave these prices."""
SOURCE_URL = "https://cloud.google.com/compute/vm-instance-pricing"


@dataclass(frozen=True)
class Rates:
    """What one hour of a vCPU and of a GB of memory costs, in USD."""

    vcpu: float
    gb: float | None
    """None for a family sold only with a fixed memory per vCPU (MEMORY_IN_VCPU_RATE):
    the source prices its machines whole, so `vcpu` includes that memory."""


@dataclass(frozen=True)
class RegionRates:
    on_demand: Rates
    spot: Rates


MEMORY_IN_VCPU_RATE = {"c2": 4.0, "t2d": 4.0}
"""GB per vCPU of the families whose vCPU rate includes their memory: c2 and t2d come
only as standard types, so their machine prices do not split into vCPU and memory."""


def _rates(vcpu: float, gb: float | None, spot_vcpu: float, spot_gb: float | None) -> RegionRates:
    return RegionRates(Rates(vcpu, gb), Rates(spot_vcpu, spot_gb))


# On-demand vCPU, on-demand GB, spot vCPU, spot GB: USD per hour.
PREDEFINED: dict[str, dict[str, RegionRates]] = {
    "e2": {
        "us-central1": _rates(0.02181159, 0.00292353, 0.01309, 0.001754),
        "us-east1": _rates(0.02181159, 0.00292353, 0.01309, 0.001754),
        "us-east4": _rates(0.02456745, 0.00329199, 0.01347, 0.001805),
        "us-west1": _rates(0.02181159, 0.00292353, 0.01309, 0.001754),
        "europe-west1": _rates(0.02399337, 0.00321609, 0.01162, 0.001558),
        "europe-west4": _rates(0.02401338, 0.00321816, 0.01148, 0.001538),
        "asia-east1": _rates(0.02525538, 0.00338514, 0.0132, 0.001769),
    },
    "n1": {
        "us-central1": _rates(0.031611, 0.004237, 0.01115, 0.001494),
        "us-east1": _rates(0.031611, 0.004237, 0.01115, 0.001494),
        "us-east4": _rates(0.035605, 0.004771, 0.00911, 0.001221),
        "us-west1": _rates(0.031611, 0.004237, 0.01115, 0.001494),
        "europe-west1": _rates(0.034773, 0.004661, 0.0145, 0.001944),
        "europe-west4": _rates(0.034802, 0.004664, 0.02022, 0.00271),
        "asia-east1": _rates(0.036602, 0.004906, 0.00716, 0.00096),
    },
    "n2": {
        "us-central1": _rates(0.031611, 0.004237, 0.01499, 0.00201),
        "us-east1": _rates(0.031611, 0.004237, 0.01499, 0.00201),
        "us-east4": _rates(0.035605, 0.004771, 0.00815, 0.001092),
        "us-west1": _rates(0.031611, 0.004237, 0.01499, 0.00201),
        "europe-west1": _rates(0.034773, 0.004661, 0.00763, 0.001023),
        "europe-west4": _rates(0.034802, 0.004664, 0.01265, 0.001696),
        "asia-east1": _rates(0.036602, 0.004906, 0.0136, 0.001823),
    },
    "n2d": {
        "us-central1": _rates(0.027502, 0.003686, 0.00796, 0.001067),
        "us-east1": _rates(0.027502, 0.003686, 0.00796, 0.001067),
        "us-east4": _rates(0.030976, 0.004151, 0.01579, 0.002116),
        "us-west1": _rates(0.027502, 0.003686, 0.00796, 0.001067),
        "europe-west1": _rates(0.030253, 0.004055, 0.01313, 0.00176),
        "europe-west4": _rates(0.030278, 0.004058, 0.0106, 0.00142),
        "asia-east1": _rates(0.031844, 0.004268, 0.0167, 0.002239),
    },
    "n4": {
        "us-central1": _rates(0.03119, 0.00354, 0.0154, 0.001748),
        "us-east1": _rates(0.03119, 0.00354, 0.0154, 0.001748),
        "us-east4": _rates(0.03119, 0.00354, 0.01383, 0.00157),
        "us-west1": _rates(0.03119, 0.00354, 0.0154, 0.001748),
        "europe-west1": _rates(0.03434331, 0.003897894, 0.00506, 0.000574),
        "europe-west4": _rates(0.0327495, 0.003717, 0.00735, 0.000834),
        "asia-east1": _rates(0.0361149, 0.004098966, 0.01891, 0.002146),
    },
    "c2": {
        "us-central1": _rates(0.052202, None, 0.02492, None),
        "us-east1": _rates(0.052202, None, 0.02492, None),
        "us-east4": _rates(0.058786, None, 0.02229, None),
        "us-west1": _rates(0.052202, None, 0.02492, None),
        "europe-west1": _rates(0.057425, None, 0.029726, None),
        "europe-west4": _rates(0.057468, None, 0.026268, None),
        "asia-east1": _rates(0.060443, None, 0.01822, None),
    },
    "c2d": {
        "us-central1": _rates(0.029563, 0.003959, 0.00993, 0.00133),
        "us-east1": _rates(0.029563, 0.003959, 0.00993, 0.00133),
        "us-east4": _rates(0.033296, 0.004458, 0.00797, 0.001067),
        "us-west1": _rates(0.029563, 0.003959, 0.00993, 0.00133),
        "europe-west1": _rates(0.032551, 0.004359, 0.00417, 0.000559),
        "europe-west4": _rates(0.032551, 0.004359, 0.01256, 0.001682),
        "asia-east1": _rates(0.034231, 0.004584, 0.00748, 0.001002),
    },
    "c3": {
        "us-central1": _rates(0.03465, 0.003938, 0.00849, 0.000965),
        "us-east1": _rates(0.03465, 0.003938, 0.00849, 0.000965),
        "us-east4": _rates(0.03465, 0.003938, 0.00984, 0.001118),
        "us-west1": _rates(0.03465, 0.003938, 0.00849, 0.000965),
        "europe-west1": _rates(0.03815312, 0.00433613, 0.01457, 0.001656),
        "europe-west4": _rates(0.0363825, 0.0041349, 0.01536, 0.001746),
        "asia-east1": _rates(0.04012123, 0.00455981, 0.00969, 0.001101),
    },
    "c3d": {
        "us-central1": _rates(0.029563, 0.003959, 0.00659, 0.000882),
        "us-east1": _rates(0.029563, 0.003959, 0.00659, 0.000882),
        "us-east4": _rates(0.029563, 0.003959, 0.01221, 0.001635),
        "us-west1": _rates(0.029563, 0.003959, 0.00659, 0.000882),
        "europe-west1": _rates(0.03255182, 0.004359255, 0.00839, 0.001124),
        "europe-west4": _rates(0.03104115, 0.00415695, 0.01624, 0.002176),
        "asia-east1": _rates(0.034231, 0.004584126, 0.01242, 0.001663),
    },
    "t2d": {
        "us-central1": _rates(0.042246, None, 0.01576, None),
        "us-east1": _rates(0.042246, None, 0.01576, None),
        "us-east4": _rates(0.04758, None, 0.015824, None),
        "us-west1": _rates(0.042246, None, 0.01576, None),
        "europe-west1": _rates(0.046473, None, 0.013902, None),
        "europe-west4": _rates(0.04651, None, 0.015364, None),
        "asia-east1": _rates(0.048916, None, 0.013828, None),
    },
}
"""Predefined (standard, highmem, highcpu) machine types."""

CUSTOM: dict[str, dict[str, RegionRates]] = {
    "n1": {
        "us-central1": _rates(0.03319155, 0.004446, 0.0117, 0.001569),
        "us-east1": _rates(0.03319155, 0.004446, 0.0117, 0.001569),
        "us-east4": _rates(0.03738525, 0.00500955, 0.00957, 0.001282),
        "us-west1": _rates(0.03319155, 0.004446, 0.0117, 0.001569),
        "europe-west1": _rates(0.03651165, 0.00489405, 0.01523, 0.002041),
        "europe-west4": _rates(0.0365421, 0.0048972, 0.02124, 0.002846),
        "asia-east1": _rates(0.0384321, 0.0051513, 0.00752, 0.001007),
    },
}
"""Custom machine types (n1-custom-8-30720, or custom-8-30720 for n1), solved from the
catalog's n1 custom machines."""

CUSTOM_FAMILIES = frozenset({"e2", "n1", "n2", "n2d", "n4"})
"""The families of PREDEFINED that Compute Engine sells custom machine types of."""
