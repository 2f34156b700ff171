"""main_service and node_service pass user bytes along; they never load an unpickler."""

import json
import subprocess
import sys


def test_services_load_no_unpickler():
    code = (
        "import json, sys\n"
        "import burla.services.main_service.command, burla.services.main_service.app\n"
        "import burla.services.node_service.__main__\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = set(json.loads(out))
    assert "burla.services.main_service.service" in modules
    assert "burla.services.node_service.node" in modules
    assert not {"cloudpickle", "tblib", "dill"} & modules


def test_service_sources_never_mention_an_unpickler():
    import re
    from pathlib import Path

    import burla.services

    root = Path(burla.services.__file__).parent
    sources = [*root.glob("main_service/*.py"), *root.glob("node_service/*.py")]
    assert len(sources) >= 6
    unpickler = re.compile(r"\b(import|from)\s+(cloud)?pickle\b|\bpickle\.loads?\b|\bdill\b")
    for source in sources:
        assert not unpickler.search(source.read_text()), f"{source} uses an unpickler"
