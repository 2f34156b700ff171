"""node_service: one per node; keeps its warm workers, runs one job at a time on them."""
