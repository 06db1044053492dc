"""The library capability: registered libraries (a ``default`` one at
``<data>/library``), their index, resumable uploads and templates (docs/architecture.md, "Library
and provisioning")."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.access import AccessControl
from viridian.access.hostgroups import HostGroups
from viridian.service.capability import Capability
from viridian.service.library.forwarding import Forwarder
from viridian.service.library.hostgroup_routes import install_hostgroup_routes
from viridian.service.library.peer_routes import install_peer_provision_routes
from viridian.service.library.provisioning import READY, Provisioner, VMMaker
from viridian.service.library.routes import (
    install_library_routes,
    install_provision_routes,
    install_template_routes,
)
from viridian.service.library.shares import LibraryIndex
from viridian.service.library.store import LibraryStore
from viridian.service.library.templates import Templates

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM
from viridian.service.library.uploads import Uploads


class LibraryCapability(Capability):
    name = "library"

    def __init__(self, context: VMMaker) -> None:
        self.store = LibraryStore(context.catalog)
        self.index = LibraryIndex(context, self.store)
        self.uploads = Uploads(self.index)
        self.templates = Templates(context, self.store)
        self.index.extra_uses = self._template_uses
        self.provisioner = Provisioner(context, self.templates)
        self.forwarder = Forwarder(context, self.provisioner.placement)
        self.templates.remote_users = self.forwarder.disk_users
        self._watches: set[asyncio.Task[None]] = set()
        self.hostgroups: HostGroups | None = None

    def start(self) -> None:
        self.index.ensure_default()
        self.provisioner.placement.start()  # this host's facts for the cluster agent

    def install_routes(self, app: FastAPI) -> None:
        install_library_routes(app, self)
        install_template_routes(app, self)
        access = getattr(app.state, "access", None)  # set before capabilities' routes
        if isinstance(access, AccessControl):  # host groups live in the access store
            self.hostgroups = HostGroups(access.store)
            install_hostgroup_routes(app, self.hostgroups, access)
        install_provision_routes(app, self)
        install_peer_provision_routes(app, self)  # peer token only: outside the gate

    def adopted(self, vm: LiveVM) -> None:
        if self.provisioner.status.get(vm.record.id) not in (None, READY):
            task = asyncio.get_running_loop().create_task(
                self.provisioner.watch(vm.record.id))
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        status = self.provisioner.status.get(vm.record.id)
        return {"provisioning": status} if status else {}

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        folder = self.provisioner.folder_of(vm.record.id)
        self.provisioner.status.forget(vm.record.id)
        if delete_files and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    async def close(self) -> None:
        for task in list(self._watches):
            task.cancel()
        await self.provisioner.placement.close()

    def _template_uses(self, path: Path) -> list[str]:
        """A template disk's VMs (those reading it through overlays too)."""
        for template in self.templates.all():
            for disk in template.manifest.disks:
                if template.disk_path(disk) == path:
                    name, version = template.manifest.name, template.manifest.version
                    return [f"template '{name}' v{version}",
                            *(f"VM '{vm}'" for vm in self.templates.users(name, version))]
        return []
