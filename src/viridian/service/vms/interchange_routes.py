"""HTTP routes of export and import (docs/api.md, "Export and import"): both answer 202
with a job (``?wait=S`` answers once it ended)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Query

from viridian.config import API_PREFIX
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.vms.interchange import Interchange


class ExportRequest(RequestBody):
    folder: str
    """An existing folder; the package is written to ``folder/<VM name>`` (an OVA to
    ``folder/<VM name>.ova``)."""
    format: Literal["native", "ovf", "ova"] = "native"
    """native (viridian's package), ovf (OVF 1.x folder) or ova (one tar file)."""
    from_backup: str | None = None
    """Export the VM as it was at this backup point (native only; the VM may run)."""


class ImportRequestBody(RequestBody):
    path: str
    """The exported VM's folder (it holds vm.json and export.json), or an OVF
    descriptor (``.ovf``) or OVA (``.ova``) file."""
    mode: Literal["register_in_place", "copy"] = "copy"
    new_id: bool = False
    name: str | None = None
    """Register the VM under this name instead of the exported one."""


class LibvirtImportRequest(RequestBody):
    domain: str
    """The name of a shut off domain of the local libvirt (``qemu:///system``)."""
    name: str | None = None
    """Register the VM under this name instead of the domain's."""


def install_interchange_routes(app: FastAPI, interchange: Interchange) -> None:
    """``POST /vms/{ref}/export``, ``POST /imports`` and ``POST /imports/libvirt``."""
    jobs = interchange.core.jobs

    async def answer(job: dict[str, Any], wait: float) -> dict[str, Any]:
        return await jobs.wait(job["id"], wait) if wait else job

    @app.post(f"{API_PREFIX}/vms/{{ref}}/export", status_code=202, tags=["vms"])
    async def vm_export(ref: str, spec: ExportRequest,
                        wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Export a VM that is Off or Saved into ``folder/<name>`` (a job)."""
        return await answer(interchange.export(ref, spec.folder, spec.format,
                                                      spec.from_backup), wait)

    @app.post(f"{API_PREFIX}/imports", status_code=202, tags=["vms"])
    async def vm_import_package(spec: ImportRequestBody,
                                wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Import an exported VM (a job whose result is the vm object)."""
        return await answer(interchange.import_vm(spec.path, spec.mode, spec.new_id,
                                                  spec.name), wait)

    @app.post(f"{API_PREFIX}/imports/libvirt", status_code=202, tags=["vms"])
    async def vm_import_libvirt(spec: LibvirtImportRequest,
                                wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Import a shut off domain of the local libvirt as a new VM (a job whose result is
        the vm object with ``unmapped`` and ``notices``)."""
        return await answer(interchange.import_libvirt(spec.domain, spec.name), wait)
