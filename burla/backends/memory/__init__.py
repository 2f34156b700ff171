"""In-memory backends: real implementations of the four protocols for the simulator and tests."""

from burla.backends.memory.blobs import MemoryBlobStore
from burla.backends.memory.compute import MemoryComputeProvider
from burla.backends.memory.containers import MemoryContainerRuntime
from burla.backends.memory.store import MemoryStore

__all__ = ["MemoryBlobStore", "MemoryComputeProvider", "MemoryContainerRuntime", "MemoryStore"]
