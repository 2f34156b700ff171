"""Changing the client's config file (~/.burla/config.toml) in place: `burla deploy` and
`burla login` write a cluster's address, certificate fingerprint and token there.

Only burla's own settings live in the file: top-level text and whole numbers and one
[gcp] table (burla.core.settings), so it is written back by hand, keys in their order.
It may hold a token, so it is readable by its owner only, and replaced in one rename.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from burla.core.errors import InvalidRequestError

Changes = Mapping[str, str | int | None]
"""Settings to set; None removes one."""


def update_config(path: Path, top: Changes, gcp: Changes | None = None) -> None:
    """Set (or, for None, remove) top-level settings and [gcp] settings in the file."""
    values = read_config(path)
    _apply(values, top)
    table = dict(values.pop("gcp", None) or {})
    _apply(table, gcp or {})
    if table:
        values["gcp"] = table
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(temporary, flags, 0o600), "w") as file:
        file.write(toml_text(values))
    temporary.replace(path)


def read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise InvalidRequestError(f"{path} is not TOML ({error}); fix or remove it") from None


def toml_text(values: Mapping[str, Any]) -> str:
    """burla's settings as TOML: top-level values, then the [gcp] table."""
    lines = [_line(name, value) for name, value in values.items() if name != "gcp"]
    if values.get("gcp"):
        lines += ["", "[gcp]", *(_line(name, value) for name, value in values["gcp"].items())]
    return "\n".join(lines) + "\n"


def _apply(values: dict[str, Any], changes: Changes) -> None:
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value


def _line(name: str, value: Any) -> str:
    if not isinstance(value, str | int):
        raise InvalidRequestError(
            f"setting {name!r} holds {value!r}; burla's settings are text, whole numbers, "
            "true or false"
        )
    # A JSON string of text is a TOML basic string; a number and true/false are the same
    # in both.
    return f"{name} = {json.dumps(value, ensure_ascii=False)}"
