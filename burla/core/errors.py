"""Every error burla raises, in one tree.

    BurlaError                      base of everything below; catch this to catch burla
    ├── InvalidRequestError         the call asked for something that cannot be done as asked
    │   └── ResourceRequestError    func_cpu / func_ram / func_gpu fit on no node type
    ├── BackendError                a backend could not do what was asked
    │   ├── ConflictError           a compare-and-set or create-only write lost a race
    │   ├── NotFoundError           the document, blob, machine or container does not exist
    │   └── SignedUrlError          a signed URL is expired, tampered with or used for another key
    └── InvariantError              burla's own bookkeeping broke a rule; a bug, please report it

Every message says what happened and what to do about it. Foreign exceptions
(sqlite, google.api_core, docker, redis) are turned into these where they
enter burla, in the backend that met them.
"""

from __future__ import annotations


class BurlaError(Exception):
    """Base class of every error burla raises on purpose."""


class InvalidRequestError(BurlaError):
    """The request cannot be carried out as asked; change the arguments."""


class ResourceRequestError(InvalidRequestError):
    """A per-input resource request is larger than every node type."""


class BackendError(BurlaError):
    """A backend (store, blob store, compute, containers) refused or failed an operation."""


class ConflictError(BackendError):
    """A conditional write found another version than the one expected."""


class NotFoundError(BackendError):
    """The named object does not exist."""


class SignedUrlError(BackendError):
    """A signed URL was used after it expired, for another key, or with another method."""


class InvariantError(BurlaError):
    """Internal state broke one of burla's rules. This is a bug in burla."""
