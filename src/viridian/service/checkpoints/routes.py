"""HTTP routes of checkpoints (docs/api.md, "Checkpoints"). Take, apply and delete answer 202
with a job (``?wait=S`` answers once it ended, like VM actions); rename answers 200."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Query
from pydantic import Field

from viridian.config import API_PREFIX
from viridian.service.http_boundary import RequestBody
from viridian.service.jobs import JobRunner

if TYPE_CHECKING:
    from viridian.service.checkpoints.operations import CheckpointsCapability

PREFIX = f"{API_PREFIX}/vms/{{ref}}/checkpoints"


class NewCheckpoint(RequestBody):
    name: str | None = None
    notes: str = Field("", max_length=4096)
    type: Literal["standard", "production"] = "standard"
    """Hyper-V's checkpoint type (``CHECKPOINT_TYPES`` in operations)."""


class ApplyOptions(RequestBody):
    checkpoint_first: bool = False


class CheckpointChange(RequestBody):
    name: str | None = None
    notes: str | None = Field(None, max_length=4096)


def install_checkpoint_routes(app: FastAPI, checkpoints: CheckpointsCapability,
                              jobs: JobRunner) -> None:
    """Add the ``/vms/{ref}/checkpoints`` routes (before the generic VM action route)."""

    async def answer(job: dict[str, Any], wait: float) -> dict[str, Any]:
        return await jobs.wait(job["id"], wait) if wait else job

    @app.get(PREFIX)
    async def checkpoint_list(ref: str) -> dict[str, Any]:
        return checkpoints.tree_view(ref)

    @app.post(PREFIX, status_code=202)
    async def checkpoint_new(ref: str, spec: NewCheckpoint | None = None,
                             wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        spec = spec or NewCheckpoint(name=None, notes="", type="standard")
        return await answer(checkpoints.take(ref, spec.name, spec.notes, spec.type), wait)

    @app.post(PREFIX + "/{cp}/apply", status_code=202)
    async def checkpoint_apply(ref: str, cp: str, options: ApplyOptions | None = None,
                               wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        options = options or ApplyOptions()
        return await answer(checkpoints.apply(ref, cp, options.checkpoint_first), wait)

    @app.patch(PREFIX + "/{cp}")
    async def checkpoint_change(ref: str, cp: str, change: CheckpointChange) -> dict[str, Any]:
        return await checkpoints.rename(ref, cp, change.name, change.notes)

    @app.delete(PREFIX + "/{cp}", status_code=202)
    async def checkpoint_remove(ref: str, cp: str, subtree: bool = False,
                                wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        return await answer(checkpoints.remove(ref, cp, subtree), wait)
