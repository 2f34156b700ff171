"""The environment every ComputeProvider gives a node's process: who the node is, where its
cluster is, and which names a boot's own `env` may not set."""

from __future__ import annotations

from burla.core.errors import InvalidRequestError
from burla.core.protocols import BootSpec

RESERVED_ENV = ("BURLA_NODE_ID", "BURLA_NODE_TYPE", "BURLA_MAIN_URL", "BURLA_NODE_DIR")
"""Set by the provider itself (BURLA_NODE_DIR where the node's directory is made)."""


def check_boot_env(boot: BootSpec) -> None:
    clashes = sorted(set(boot.env) & set(RESERVED_ENV))
    if clashes:
        raise InvalidRequestError(
            f"node {boot.node_id!r}: the provider sets {clashes} itself; pass other names in env"
        )


def node_identity(boot: BootSpec) -> dict[str, str]:
    """BURLA_NODE_ID, BURLA_NODE_TYPE (the NodeType as JSON) and BURLA_MAIN_URL of `boot`."""
    return {
        "BURLA_NODE_ID": boot.node_id,
        "BURLA_NODE_TYPE": boot.node_type.model_dump_json(),
        "BURLA_MAIN_URL": boot.main_url,
    }
