"""Compute Engine's failures as burla errors, at the edge where they come in.

A refused request raises google.api_core exceptions; a request that was accepted can still
fail later, as an operation that finishes with errors (quota and stockouts often arrive
this way). Both forms of the same failure become the same burla error:

    already exists                         ConflictError
    rate limits, 429, 500, 502, 503, 504   TransientBackendError (Compute Engine's documented
                                           transient errors: retried with backoff)
    resource not ready                     TransientBackendError (the VM is in the middle of
                                           another operation, a delete or a stop: it is
                                           asked again once that is over)
    quota exceeded                         BackendError naming the quota and what to do
    zone out of that machine type          BackendError suggesting another zone or type
    anything else                          BackendError with Compute Engine's message

Quota is a BackendError, not a ResourceRequestError: the request is valid, the project
has reached its limit, and raising the quota makes the same request succeed.
"""

from __future__ import annotations

import re

from burla.core.errors import BackendError, ConflictError, TransientBackendError

try:
    from google.api_core import exceptions as google_errors
    from google.cloud import compute_v1
except ImportError as missing:
    raise ImportError(
        f"{missing}: burla's Compute Engine provider needs the gcp extra; "
        "pip install 'burla-cluster[gcp]'"
    ) from missing

QUOTA_REASONS = frozenset({"quotaExceeded", "QUOTA_EXCEEDED"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
NOT_READY_REASONS = frozenset({"resourceNotReady"})
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED"})
EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
STOCKOUT_CODES = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
)
_QUOTA_NAME = re.compile(r"Quota '([^']+)'")


def from_api_error(
    error: google_errors.GoogleAPICallError, action: str, project: str
) -> BackendError:
    """The burla error for a request Compute Engine refused while trying to `action`."""
    if isinstance(error, google_errors.Conflict):
        return ConflictError(
            f"could not {action}: it already exists ({error.message}); delete it first or "
            "choose another node id"
        )
    reasons = {str(detail.get("reason", "")) for detail in error.errors if isinstance(detail, dict)}
    if error.code in TRANSIENT_STATUSES or reasons & (RATE_REASONS | NOT_READY_REASONS):
        return TransientBackendError(
            f"Compute Engine could not {action} for now: {error.code} {error.message}"
        )
    if reasons & QUOTA_REASONS:
        return quota_error(action, project, str(error.message))
    return BackendError(
        f"Compute Engine refused to {action}: {error.code} {error.message}; fix the cause it "
        "names (project, zone, permissions, image) and try again"
    )


def from_operation(
    operation: compute_v1.Operation, action: str, project: str
) -> BackendError | None:
    """The burla error for an operation that finished with errors, or None if it succeeded."""
    errors = list(operation.error.errors)
    if not errors and operation.http_error_status_code < 400:
        return None
    codes = {entry.code for entry in errors}
    message = "; ".join(entry.message for entry in errors) or operation.http_error_message
    if codes & EXISTS_CODES:
        return ConflictError(
            f"could not {action}: it already exists ({message}); delete it first or choose "
            "another node id"
        )
    if codes & QUOTA_CODES:
        limits = [
            detail.quota_info.limit_name or detail.quota_info.metric_name
            for entry in errors
            for detail in entry.error_details
        ]
        return quota_error(action, project, message, *limits)
    if codes & STOCKOUT_CODES:
        return BackendError(
            f"could not {action}: the zone has no capacity for that machine type right now "
            f"({message}); try again later, or use another zone or node type"
        )
    status = operation.http_error_status_code or "error"
    return BackendError(
        f"could not {action}: Compute Engine's operation {operation.name} failed ({status}: "
        f"{message}); fix the cause it names and try again"
    )


def quota_error(action: str, project: str, message: str, *limits: str) -> BackendError:
    """Which quota ran out (as the message names it, else the error's details) and what to
    do about it."""
    found = _QUOTA_NAME.search(message)
    named = [found.group(1)] if found else [limit for limit in limits if limit]
    quota_name = named[0] if named else "a Compute Engine quota"
    return BackendError(
        f"could not {action}: quota {quota_name} of project {project!r} is used up "
        f"({message}). Ask for more at https://console.cloud.google.com/iam-admin/quotas"
        f"?project={project}, or lower max_nodes or use a smaller node type"
    )
