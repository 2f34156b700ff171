"""Firestore's failures as burla's errors: those Google documents as worth retrying are
transient (burla's services try them again and wait them out), the others are not."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api

from burla.backends.gcp.firestore_errors import translated
from burla.core.errors import BackendError, InvalidRequestError, TransientBackendError

GIVEN_UP = "Deadline of 60.0s exceeded while calling target function"


@pytest.mark.parametrize(
    "error",
    [
        api.TooManyRequests("This database has exceeded their daily quota or the ramp up limit"),
        api.Aborted("Too much contention on these documents. Please try again."),
        api.InternalServerError("internal error"),
        api.ServiceUnavailable("the service is unavailable"),
        api.DeadlineExceeded("deadline exceeded"),
        api.RetryError(GIVEN_UP, cause=api.TooManyRequests("ramp up limit for writes")),
        api.RetryError(GIVEN_UP, cause=api.ServiceUnavailable("unavailable")),
    ],
)
def test_what_google_says_to_retry_is_transient(error: Exception) -> None:
    with pytest.raises(TransientBackendError, match="Firestore"), translated("a write", "p"):
        raise error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (api.PermissionDenied("missing role"), BackendError),
        (api.InvalidArgument("too big"), InvalidRequestError),
        (api.TooManyRequests("the request exceeds maximum size"), InvalidRequestError),
        (api.RetryError(GIVEN_UP, cause=api.PermissionDenied("missing role")), BackendError),
    ],
)
def test_what_stays_wrong_is_not(error: Exception, kind: type[Exception]) -> None:
    with pytest.raises(kind) as raised, translated("a write", "p"):
        raise error
    assert not isinstance(raised.value, TransientBackendError)
