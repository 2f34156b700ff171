"""The Compute Engine instance resource of main_service's VM."""

from __future__ import annotations

from google.cloud import compute_v1

from burla.deploy.options import DeployOptions

MAIN_DISK_GB = 50
"""Room for the default images main_service builds (one per Python) besides Debian."""


def main_instance(options: DeployOptions, metadata: dict[str, str]) -> compute_v1.Instance:
    zone = f"zones/{options.zone_name}"
    return compute_v1.Instance(
        name=options.main_vm,
        machine_type=f"{zone}/machineTypes/{options.main_machine_type}",
        labels=options.labels,
        tags=compute_v1.Tags(items=[options.main_tag, options.internal_tag]),
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=options.source_image,
                    disk_size_gb=MAIN_DISK_GB,
                    disk_type=f"{zone}/diskTypes/pd-balanced",
                ),
            )
        ],
        network_interfaces=[
            compute_v1.NetworkInterface(
                network="global/networks/default",
                access_configs=[
                    compute_v1.AccessConfig(name="external-nat", type_="ONE_TO_ONE_NAT")
                ],
            )
        ],
        metadata=compute_v1.Metadata(
            items=[compute_v1.Items(key=key, value=value) for key, value in metadata.items()]
        ),
        service_accounts=[
            compute_v1.ServiceAccount(
                email=options.account_email,
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ],
    )
