"""Firestore's failures, as burla's errors: what happened, and what to do about it.

Every call of FirestoreStore runs inside `translated`, so google.api_core's and
google.auth's exceptions never reach burla's callers. Preconditions that lose a race are
not errors here: the store catches those where it expects them. The failures Google
documents as worth retrying (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ABORTED and
RESOURCE_EXHAUSTED: an overloaded or throttled database) are TransientBackendError once
the store's own retries are spent: burla's services try them again, and their own work
waits for Firestore to come back rather than ending.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as api
from google.auth import exceptions as auth

from burla.core.errors import BackendError, BurlaError, InvalidRequestError, TransientBackendError

_REACH = (
    "is FIRESTORE_EMULATOR_HOST set to a running emulator (host:port), or, for Google "
    "Cloud, are credentials configured (gcloud auth application-default login, or a "
    "service account) and is the Firestore API enabled in the project?"
)


def unreachable(project: str, detail: str) -> TransientBackendError:
    return TransientBackendError(
        f"Firestore for project {project!r} cannot be reached ({detail}); {_REACH}"
    )


_UNREACHABLE = (api.ServiceUnavailable, api.DeadlineExceeded)


@contextmanager
def translated(action: str, project: str) -> Iterator[None]:
    """Run a block that calls Firestore; raise burla's errors for Firestore's."""
    try:
        yield
    except BurlaError:
        raise
    except api.RetryError as error:  # retried until the time ran out: say why it failed
        if error.cause is None or isinstance(error.cause, _UNREACHABLE):
            raise unreachable(project, f"{action}: {_message(error)}") from error
        with translated(action, project):
            raise error.cause from error
    except _UNREACHABLE as error:
        raise unreachable(project, f"{action}: {_message(error)}") from error
    except (api.Unauthenticated, api.PermissionDenied, auth.GoogleAuthError) as error:
        raise BackendError(
            f"{action} failed: Firestore refused the credentials for project {project!r} "
            f"({_message(error)}); give this account the Cloud Datastore User role, or {_REACH}"
        ) from error
    except api.InvalidArgument as error:
        raise InvalidRequestError(
            f"{action}: Firestore cannot store this ({_message(error)}); documents must stay "
            "under 1 MiB and 20 levels of nesting, and keys under 1500 bytes"
        ) from error
    except api.TooManyRequests as error:
        if "exceeds maximum size" in str(error):
            raise InvalidRequestError(
                f"{action}: the request is larger than Firestore takes ({_message(error)}); "
                "write fewer or smaller documents at once"
            ) from error
        raise TransientBackendError(
            f"{action} failed: Firestore is throttling project {project!r} or its quota is "
            f"used up ({_message(error)}); it passes with fewer writes, or a raised quota"
        ) from error
    except (api.Aborted, api.InternalServerError) as error:
        raise TransientBackendError(
            f"{action} failed for a moment: Firestore said {_message(error)!r} "
            f"(project {project!r})"
        ) from error
    except api.GoogleAPIError as error:
        raise BackendError(
            f"{action} failed: Firestore said {_message(error)!r} (project {project!r}); "
            "retry, and check the project's Firestore database if it persists"
        ) from error
    except UnicodeEncodeError as error:
        raise InvalidRequestError(
            f"{action}: a key, queue name, item id, field name or value is not valid Unicode "
            f"text ({error.reason}); use text that encodes to UTF-8"
        ) from None


def _message(error: Exception) -> str:
    if isinstance(error, api.GoogleAPICallError):
        return str(error.message or error)
    return str(error)
