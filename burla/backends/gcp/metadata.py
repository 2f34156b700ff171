"""What a Compute Engine VM learns of itself from its metadata server.

Every VM reaches its metadata server at metadata.google.internal (169.254.169.254) over
plain HTTP. A request must carry `Metadata-Flavor: Google`, and the server's answers carry
it back, which tells a real metadata server from anything else listening there. A value
comes back as text. GCE_METADATA_HOST, which Google's own client libraries read too,
names another server (host[:port]): tests point it at a fake one on loopback.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Mapping

from burla.core.backoff import Backoff
from burla.core.errors import BackendError

METADATA_HOST_ENV = "GCE_METADATA_HOST"
DEFAULT_HOST = "metadata.google.internal"
FLAVOR = {"Metadata-Flavor": "Google"}
INTERNAL_IP_PATH = "instance/network-interfaces/0/ip"
TOKEN_PATH = "instance/service-accounts/default/token"
ASK_FOR_S = 30.0
"""A VM's metadata server answers from the first moment of its boot; this long covers a
slow first answer without hanging a node that is not on Compute Engine at all."""


def metadata_url(path: str, env: Mapping[str, str]) -> str:
    host = env.get(METADATA_HOST_ENV) or DEFAULT_HOST
    return f"http://{host}/computeMetadata/v1/{path}"


def metadata_value(path: str, env: Mapping[str, str], *, ask_for_s: float = ASK_FOR_S) -> str:
    """The value at `path` of this VM's metadata; BackendError if the server does not give
    it within `ask_for_s` (it is asked again after failures that may pass)."""
    import httpx  # here: a node that never asks (a local one) starts without it

    url = metadata_url(path, env)
    backoff = Backoff(0.1, 2.0, clock=time.monotonic, give_up_after_s=ask_for_s)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while True:
            try:
                answer = client.get(url, headers=FLAVOR)
                if answer.headers.get("metadata-flavor") != "Google":
                    raise BackendError(
                        f"{url} answered, but not as a Compute Engine metadata server "
                        "(no Metadata-Flavor: Google); is this a Compute Engine VM?"
                    )
                if answer.status_code < 500:
                    answer.raise_for_status()
                    return answer.text.strip()
                problem = f"HTTP {answer.status_code}"
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            except httpx.HTTPStatusError as error:
                raise BackendError(f"the metadata server refused {url}: {error}") from None
            if backoff.exhausted:
                raise BackendError(
                    f"the metadata server did not answer {url} in {ask_for_s:g} s ({problem}); "
                    "is this a Compute Engine VM?"
                )
            time.sleep(backoff.pause())


def internal_ip(env: Mapping[str, str], *, ask_for_s: float = ASK_FOR_S) -> str:
    """This VM's internal IP address (its first network interface's)."""
    value = metadata_value(INTERNAL_IP_PATH, env, ask_for_s=ask_for_s)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise BackendError(
            f"the metadata server gave {value!r} as this VM's internal IP, not an address"
        ) from None


def access_token(env: Mapping[str, str], *, ask_for_s: float = ASK_FOR_S) -> tuple[str, float]:
    """An OAuth access token of this VM's service account, and how many seconds it lives."""
    value = metadata_value(TOKEN_PATH, env, ask_for_s=ask_for_s)
    try:
        answer = json.loads(value)
        return str(answer["access_token"]), float(answer["expires_in"])
    except (ValueError, TypeError, KeyError):
        raise BackendError(
            "the metadata server's answer for this VM's access token is not one "
            "(access_token and expires_in); does the VM have a service account?"
        ) from None
