"""remote_parallel_map as `burla` exports it: a call that goes to this machine's cluster,
when none runs, begins starting it before the rest of the client loads, so that the
cluster boots while the client loads and pickles (a cold start's two longest steps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

if TYPE_CHECKING:
    from burla.client.map import remote_parallel_map as remote_parallel_map
else:

    def remote_parallel_map(function_: Any, inputs: Any, **options: Any) -> Any:
        """Run `function_` on every input on the cluster; return the results in input
        order. The options are burla.client.map.remote_parallel_map's."""
        launch_local_cluster(options.get("backend"))
        from burla.client.map import remote_parallel_map as run

        return run(function_, inputs, **options)


def launch_local_cluster(backend: str | None) -> None:
    """Begin starting this machine's cluster if the call goes to it (not from inside a
    job, not to a cloud cluster) and none runs; an unknown backend is left for the call
    to refuse."""
    from burla.client import local
    from burla.core.settings import Backend, load_settings

    settings = load_settings()
    chosen = backend or settings.backend
    if settings.job_token or chosen == "gcp" or chosen not in get_args(Backend):
        return
    local.launch(local.local_dir(chosen), chosen)
