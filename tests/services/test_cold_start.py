"""What a cold start leans on: node_service never loads the web stack or an async HTTP
client, main_service starts its first node's process before it loads anything but the
standard library (and its command line's parser before the models), main_service loads
the web stack only after it has started its first node, and
FastAPI not even then (its first routes are plain ASGI), and main_service's socket takes
connections before it serves."""

import json
import socket
import subprocess
import sys

from burla.services.loopback import bind_loopback

WEB_STACK = {"fastapi", "uvicorn", "starlette", "httpx", "httpcore"}


def loaded_by(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(run.stdout))


def test_node_service_loads_no_web_stack():
    modules = loaded_by("import burla.services.node_service.__main__")
    assert "burla.services.node_service.node" in modules
    assert not WEB_STACK & modules


def test_main_service_starts_its_first_node_before_it_loads_anything_else():
    modules = loaded_by("import burla.services.main_service.__main__")
    assert "burla.backends.local.node_spare" in modules
    burla_modules = {name for name in modules if name.startswith("burla.")} - {"burla"}
    assert burla_modules <= {
        "burla.services.main_service.__main__",
        "burla.backends",
        "burla.backends.local",
        "burla.backends.local.node_spare",
        "burla.core",
        "burla.core.errors",
        "burla.services",
        "burla.services.main_service",
        "burla.services.main_service.local_start",
    }
    assert not {"click", "anyio", "pydantic"} & modules


def test_main_service_command_line_loads_no_models():
    modules = loaded_by("import burla.services.main_service.command")
    assert not {"pydantic", "burla.core.models", "burla.services.main_service.boot"} & modules


def test_main_service_loads_the_web_stack_only_to_serve():
    modules = loaded_by("import burla.services.main_service.boot")
    assert "burla.backends.local.compute" in modules
    assert not WEB_STACK & modules


def test_main_service_serves_a_cold_starts_routes_without_fastapi():
    modules = loaded_by(
        "import burla.services.main_service.front, burla.services.serving\n"
        "import burla.services.main_service.boot"
    )
    assert "uvicorn" in modules
    assert not {"fastapi", "httpx", "burla.services.main_service.app"} & modules


def test_a_request_sent_before_the_service_serves_waits_for_it():
    sock, address = bind_loopback()
    host, port = address.split(":")
    with sock, socket.create_connection((host, int(port)), timeout=10) as early:
        early.sendall(b"GET /health HTTP/1.1\r\n\r\n")
        sock.settimeout(10)
        accepted, _ = sock.accept()  # the service serves only now
        with accepted:
            assert accepted.recv(64).startswith(b"GET /health")
