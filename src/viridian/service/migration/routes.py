"""HTTP routes of migration (docs/api.md, "Migration"). ``POST /vms/{ref}/move`` answers
202 with the move job; the ``/migrations/incoming`` routes are what a source service calls
on its target, with a token of the target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request

from viridian.config import API_PREFIX
from viridian.service.migration.bodies import IncomingRequest, MoveRequest, MoveStorageRequest

if TYPE_CHECKING:
    from viridian.service.migration.capability import Migration

INCOMING = f"{API_PREFIX}/migrations/incoming"


def install_migration_routes(app: FastAPI, migration: Migration) -> None:
    jobs = migration.host.jobs

    @app.post(f"{API_PREFIX}/vms/{{ref}}/move", status_code=202, tags=["vms"])
    async def vm_move(ref: str, spec: MoveRequest,
                      wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Move the VM to another viridian host (quick or live; a job)."""
        job = migration.outgoing.move(ref, spec)
        return await jobs.wait(job["id"], wait) if wait else job

    @app.post(f"{API_PREFIX}/vms/{{ref}}/move-storage", status_code=202, tags=["vms"])
    async def vm_move_storage(ref: str, spec: MoveStorageRequest,
                              wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Move the VM's hard disks to another folder of this host (live while it runs)."""
        job = migration.storage.move(ref, spec.folder)
        return await jobs.wait(job["id"], wait) if wait else job

    @app.get(INCOMING, tags=["migration"])
    async def incoming_list() -> dict[str, Any]:
        """Moves into this host that are prepared or committed."""
        return {"incoming": migration.incoming.list()}

    @app.post(INCOMING, status_code=201, tags=["migration"])
    async def incoming_prepare(spec: IncomingRequest, request: Request) -> dict[str, Any]:
        """A source service asks this host to get ready for a VM (checks; live: QEMU
        listening). The answer's ``uri`` is where to migrate to."""
        return await migration.incoming.prepare(spec, request.url.hostname or "127.0.0.1")

    @app.post(f"{INCOMING}/{{incoming_id}}/commit", tags=["migration"])
    async def incoming_commit(incoming_id: str) -> dict[str, Any]:
        """The switch-over: ownership handed over, the VM registered and running here."""
        return await migration.incoming.commit(incoming_id)

    @app.delete(f"{INCOMING}/{{incoming_id}}", tags=["migration"])
    async def incoming_abort(incoming_id: str) -> dict[str, Any]:
        """Give up a prepared move (409 once committed)."""
        return await migration.incoming.abort(incoming_id)
