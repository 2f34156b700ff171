"""The backend-specific tests use the contract bindings' shared fixtures too."""

from tests.contract.conftest import free_port

__all__ = ["free_port"]
