"""Renaming a VM (Hyper-V's Rename): ``POST /api/v1/vms/{ref}/rename`` ``{"name": NEW}``.

A capability (docs/architecture.md, "How to add a capability"). The new name is checked
like a new VM's (not blank, 1..100 characters without control characters, no other VM's
name or id) through the core's one settings path, so a rename is allowed in every state
(Hyper-V renames running VMs) and is serialised with the VM's other requests. The VM's
id, folder and files keep their id-based names; only the catalog's name changes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from viridian.config import API_PREFIX
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.http_boundary import RequestBody


class Rename(RequestBody):
    name: str


class RenameCapability(Capability):
    """Renames VMs."""

    name = "rename"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def rename(self, ref: str, new_name: str) -> dict[str, Any]:
        """Rename VM ``ref`` to ``new_name``; returns the vm object.

        :raises NotFound: no VM ``ref``.
        :raises InvalidSetting: ``new_name`` is blank or not a valid name (allowed named).
        :raises Conflict: another VM has that name, or that id.
        """
        return await self.context.update_vm(ref, {"name": new_name})

    def install_routes(self, app: FastAPI) -> None:
        @app.post(f"{API_PREFIX}/vms/{{ref}}/rename", tags=["vms"])
        async def vm_rename(ref: str, body: Rename) -> dict[str, Any]:
            return await self.rename(ref, body.name)
