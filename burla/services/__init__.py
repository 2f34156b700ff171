"""The services of a burla cluster: main_service, node_service and container_service."""
