"""burla.core is pure: importing it loads no I/O library."""

import json
import subprocess
import sys

FORBIDDEN = ("anyio", "httpx", "fastapi", "uvicorn", "google", "docker", "redis", "sqlite3")


def test_core_imports_no_io_library():
    code = (
        "import json, pkgutil, importlib, sys\n"
        "import burla.core\n"
        "for m in pkgutil.iter_modules(burla.core.__path__):\n"
        "    importlib.import_module(f'burla.core.{m.name}')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = json.loads(out)
    assert "burla.core.scheduling" in modules
    assert "burla.core.inputs" in modules
    loaded = [m for m in modules if m.split(".")[0] in FORBIDDEN]
    assert loaded == []


def test_protocols_and_errors_load_without_pydantic():
    """Workers import these in an environment that holds only their own dependencies (the
    client too: a function may call remote_parallel_map)."""
    code = (
        "import json, sys\n"
        "import burla, burla.core.protocols, burla.core.errors, burla.core.clock\n"
        "import burla.core.settings, burla.client.map\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert not [m for m in json.loads(out) if m.split(".")[0] in ("pydantic", "click", "rich")]
