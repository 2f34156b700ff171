"""node_service's HTTP API, called by main_service only."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from burla.core.models import JobSpec
from burla.services import errors
from burla.services.node_service.node import NodeService


class Assignment(BaseModel):
    job: JobSpec
    function_key: str
    workers: int = Field(ge=1)


class Reset(BaseModel):
    cancel: bool = False
    """Stop workers still running the job's inputs (it failed or was canceled)."""


def create_app(node: NodeService) -> FastAPI:
    app = FastAPI(title="burla node_service", openapi_url=None)
    errors.install(app)

    @app.get("/health")
    async def health() -> dict[str, object]:
        job = node.assignment.job.job_id if node.assignment else None
        running = sum(1 for w in node.workers.values() if w.channel is not None)
        return {"node_id": node.node_id, "job_id": job, "workers": running}

    @app.post("/jobs")
    async def assign(body: Assignment) -> dict[str, str]:
        await node.assign(body.job, body.function_key, body.workers)
        return {"job_id": body.job.job_id}

    @app.post("/workers/{name}/kill")
    async def kill(name: str) -> dict[str, str]:
        await node.kill_worker(name)
        return {"worker": name}

    @app.post("/reset")
    async def reset(body: Reset) -> dict[str, str]:
        await node.reset(cancel=body.cancel)
        return {"node_id": node.node_id}

    return app
