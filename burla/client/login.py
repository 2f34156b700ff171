"""Login strings: one line that sets up a client for a cluster, as `burla tokens create`
prints it and `burla login` takes it.

    burla-login:1:<base64url of {"url": ..., "cert_sha256": ..., "token": ...}>

It holds a token: hand it over as one would a password.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from burla.client.pinning import normalized
from burla.core.errors import InvalidRequestError

PREFIX = "burla-login:1:"


@dataclass(frozen=True)
class Login:
    url: str
    token: str
    cert_sha256: str | None = None
    """The fingerprint of main_service's certificate; None for a plain-HTTP cluster."""

    def encode(self) -> str:
        fields = {"url": self.url, "cert_sha256": self.cert_sha256, "token": self.token}
        packed = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
        return PREFIX + packed.rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Login:
        text = text.strip()
        if not text.startswith(PREFIX):
            raise InvalidRequestError(
                f"that is not a login string (they start with {PREFIX!r}); ask the cluster's "
                "admin for one: `burla tokens create YOUR_NAME`"
            )
        packed = text.removeprefix(PREFIX)
        try:
            fields = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
            login = cls(fields["url"], fields["token"], fields.get("cert_sha256"))
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidRequestError(
                "the login string is damaged (cut short or changed?); copy it again whole"
            ) from None
        if not isinstance(login.url, str) or urlsplit(login.url).scheme not in ("http", "https"):
            raise InvalidRequestError(f"the login string names no cluster URL: {login.url!r}")
        if login.cert_sha256 is not None:
            login = cls(login.url, login.token, normalized(login.cert_sha256))
        return login
