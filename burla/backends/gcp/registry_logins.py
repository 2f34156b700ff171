"""Logins to Artifact Registry with Google credentials: a node's are its VM's service
account (from the metadata server), main_service's its application default credentials."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from burla.backends.docker.registry_login import TokenLogin
from burla.backends.gcp.metadata import access_token
from burla.core.errors import BackendError

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def vm_login(env: Mapping[str, str]) -> TokenLogin:
    """Logs in as this VM's service account."""
    return TokenLogin(lambda: access_token(env))


def credentials_login() -> TokenLogin:
    """Logs in with the application default credentials (a key file, gcloud's, or the
    service account of the VM or Cloud Run service main_service runs on)."""
    credentials: list[Any] = []

    def fetch() -> tuple[str, float]:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        try:
            if not credentials:
                found, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
                credentials.append(found)
            credentials[0].refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as error:
            raise BackendError(
                f"no access token for the cluster's registry ({error}); run `gcloud auth "
                "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or set "
                'registry_login = "none" in [gcp] to use the Docker engine\'s own login'
            ) from None
        expiry = credentials[0].expiry  # naive UTC, as google-auth keeps it
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        lives_s = (expiry - now).total_seconds() if expiry is not None else 3600.0
        return str(credentials[0].token), lives_s

    return TokenLogin(fetch)
