"""HTTP routes of VMs (docs/api.md, "VMs"): list, create, show, change, remove, and the
state requests (start, stop, shutdown, save, pause, resume, reset) as jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Body, FastAPI, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from viridian.config import API_PREFIX
from viridian.service.http_boundary import RequestBody
from viridian.service.vms.new_disk import NewVHD

if TYPE_CHECKING:
    from viridian.service.core import ServiceCore

Action = Literal["start", "stop", "shutdown", "save", "pause", "resume", "reset"]


class NewVM(RequestBody):
    name: str
    settings: dict[str, Any] = Field(default_factory=dict)
    memory_mb: int | None = None
    processors: int | None = None
    dvd: str | None = None
    vhd: str | None = None
    new_vhd: NewVHD | None = None
    """A VHD to create at IDE 0:0, made only once everything else was checked."""


class ImportVM(RequestBody):
    folder: str
    """The VM's folder (it holds vm.json)."""
    mode: Literal["register_in_place"] = "register_in_place"
    """Register the VM where its folder is (other modes belong to import/export)."""


class ActionOptions(RequestBody):
    timeout_s: float | None = Field(default=None, gt=0)
    """shutdown: seconds the guest gets (default 120)."""
    turn_off_after_timeout: bool = False
    """shutdown: turn the VM off when the guest has not shut down in time."""


def install_vm_routes(app: FastAPI, manager: ServiceCore) -> None:
    """Add the ``/vms`` routes (after every capability's more specific routes)."""
    @app.get(f"{API_PREFIX}/vms", tags=["vms"],
             responses={200: {"description": '{"vms": [vm, …]} sorted by name'}})
    async def vm_list(view: Literal["full", "summary"] = "full") -> StreamingResponse:
        """Every VM's vm object, sorted by name; ``view=summary`` keeps only the keys
        ``viridian vm list`` shows (docs/api.md, "VMs"). Encoded once per change of a VM
        at rest (service/vms/listing.py)."""
        chunks = manager.list_vms_chunks(summary=view == "summary")

        async def pieces() -> AsyncIterator[bytes]:  # on the loop: no thread per piece
            for chunk in chunks:
                yield chunk
        return StreamingResponse(pieces(), media_type="application/json")

    @app.post(f"{API_PREFIX}/vms", status_code=201, tags=["vms"])
    async def vm_new(spec: NewVM) -> dict[str, Any]:
        return await manager.create_vm(spec.name, spec.settings, memory_mb=spec.memory_mb,
                                       processors=spec.processors, dvd=spec.dvd, vhd=spec.vhd,
                                       new_vhd=spec.new_vhd)

    @app.post(f"{API_PREFIX}/vms/import", status_code=201, tags=["vms"])
    async def vm_import(spec: ImportVM) -> dict[str, Any]:
        """Register a removed VM's folder again (``vm.json``: same id, name, settings)."""
        return await manager.register_in_place(spec.folder)

    @app.get(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_show(ref: str) -> dict[str, Any]:
        return manager.show_vm(ref)

    @app.patch(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_set(ref: str, patch: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return await manager.update_vm(ref, patch)

    @app.delete(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_remove(ref: str, delete_files: bool = False) -> dict[str, Any]:
        return await manager.remove_vm(ref, delete_files)

    @app.post(f"{API_PREFIX}/vms/{{ref}}/delete-saved-state", tags=["vms"])
    async def vm_delete_saved_state(ref: str) -> dict[str, Any]:
        """Hyper-V's "Delete Saved State": a Saved VM becomes Off (409 in other states)."""
        return await manager.delete_saved_state(ref)

    @app.post(f"{API_PREFIX}/vms/{{ref}}/{{action}}", status_code=202, tags=["vms"])
    async def vm_action(ref: str, action: Action, options: ActionOptions | None = None,
                        wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Queue ``action``; with ``wait``, answer once the job ended (or the time passed)."""
        options = options or ActionOptions()
        job = manager.request(ref, action, timeout_s=options.timeout_s,
                              turn_off_after_timeout=options.turn_off_after_timeout)
        return await manager.jobs.wait(job["id"], wait) if wait else job
