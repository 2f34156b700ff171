"""Google's OAuth 2.0 token endpoint (oauth2.googleapis.com/token) as the fake Compute Engine
API serves it at `/token`: an access token for a service account key's signed JWT."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.compute_replies import Json

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience Google's token endpoint requires of an assertion, wherever it is sent."""
ACCESS_TOKEN = "ya29.burla-fake-access-token"
"""The access token this fake gives, to VMs and to service account keys alike."""
TOKEN_LIFE_S = 3599


def token() -> Json:
    return {"access_token": ACCESS_TOKEN, "expires_in": TOKEN_LIFE_S, "token_type": "Bearer"}


def token_reply(headers: dict[str, str], body: bytes, keys: dict[str, Any]) -> tuple[int, Json]:
    """The endpoint's answer, as Google's gives one: the assertion must be an RS256 JWT of a
    key in `keys` (service account email -> cryptography's public key), for this endpoint,
    not expired, asking for a scope."""
    form = {name: values[-1] for name, values in parse_qs(body.decode()).items()}
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return 400, _oauth_error("invalid_request", "not a form")
    if form.get("grant_type") != JWT_GRANT:
        return 400, _oauth_error("unsupported_grant_type", "Invalid grant_type")
    problem = _assertion_problem(form.get("assertion", ""), keys)
    if problem:
        return 400, _oauth_error("invalid_grant", problem)
    return 200, token()


def _oauth_error(error: str, description: str) -> Json:
    return {"error": error, "error_description": description}


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _assertion_problem(assertion: str, keys: dict[str, Any]) -> str | None:
    """Why a JWT assertion is refused, or None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        header_part, claims_part, signature_part = assertion.split(".")
        header = json.loads(_unbase64(header_part))
        claims = json.loads(_unbase64(claims_part))
        signature = _unbase64(signature_part)
    except ValueError:
        return "Invalid JWT: not three base64url JSON parts"
    if header.get("alg") != "RS256":
        return "Invalid JWT: alg must be RS256"
    key = keys.get(claims.get("iss", ""))
    if key is None:
        return f"Invalid JWT: no key of service account {claims.get('iss')!r}"
    try:
        signed = f"{header_part}.{claims_part}".encode()
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return "Invalid JWT Signature."
    if claims.get("aud") != TOKEN_AUDIENCE:
        return f"Invalid JWT: aud must be {TOKEN_AUDIENCE}, not {claims.get('aud')!r}"
    if not claims.get("scope") or float(claims.get("exp", 0)) < time.time():
        return "Invalid JWT: no scope, or expired"
    return None
