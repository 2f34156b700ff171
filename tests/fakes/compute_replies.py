"""What the fake Compute Engine API answers: JSON bodies, metadata server text, and errors
shaped the way Compute Engine shapes them."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
SELF = "https://www.googleapis.com/compute/v1"
"""Where Compute Engine's selfLinks point."""
NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
"""RFC 1035 names (1-63 characters) of instances, firewall rules, tags and label keys."""


@dataclass(frozen=True)
class MetadataValue:
    """A metadata server's answer: text, or JSON for a token."""

    text: str
    content_type: str = "application/text"


Reply = tuple[int, Json | MetadataValue]
"""A status and a JSON body, or a metadata server's value."""

TRANSIENT: dict[int, tuple[str, str, str]] = {
    403: ("rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"),
    429: ("rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"),
    500: ("backendError", "global", "Internal error. Please try again or contact Google Support."),
    503: ("backendError", "global", "Service Unavailable"),
}
"""The errors Compute Engine documents as worth a retry, by HTTP status: (reason, domain,
message). Rate quotas answer 403 rateLimitExceeded; Google's front end answers 429."""


def api_error(code: int, reason: str, message: str, domain: str = "global", **more: str) -> Reply:
    """An error reply shaped like Compute Engine's; `more` adds fields (location,
    locationType) to its one entry of `errors`."""
    detail = {"message": message, "domain": domain, "reason": reason, **more}
    return code, {"error": {"code": code, "message": message, "errors": [detail]}}


def transient_error(code: int) -> Reply:
    """The transient error Compute Engine gives with this status (see TRANSIENT)."""
    return api_error(code, *TRANSIENT[code])


def not_found(what: str) -> Reply:
    return api_error(404, "notFound", f"The resource '{what}' was not found")


def already_exists(what: str) -> Reply:
    return api_error(409, "alreadyExists", f"The resource '{what}' already exists")


def not_ready(what: str) -> Reply:
    return api_error(400, "resourceNotReady", f"The resource '{what}' is not ready")


def invalid(field: str, value: Any, why: str) -> Reply:
    """Compute Engine's 400 for a field it cannot take."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return api_error(400, "invalid", f"Invalid value for field '{field}': '{shown}'. {why}")


def required(field: str) -> Reply:
    return api_error(400, "required", f"Required field '{field}' not specified")


def fingerprint(value: Any) -> str:
    """A fingerprint of a value, as Compute Engine gives them: 8 bytes of a hash of its
    contents, base64. It changes whenever the contents change."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def timestamp() -> str:
    """Now in RFC 3339 text, as Compute Engine writes its timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())
