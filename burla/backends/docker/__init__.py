"""Containers on Docker: one per CPU per container spec, on the host network, with burla
mounted read-only. Needs the `docker` extra: pip install 'burla-cluster[docker]'."""
