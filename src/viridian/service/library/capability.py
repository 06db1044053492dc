"""The library capability: registered libraries (a ``default`` one at
``<data>/library``), their index, resumable uploads and templates (docs/architecture.md, "Library
and provisioning")."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.library.routes import install_library_routes, install_template_routes
from viridian.service.library.shares import LibraryIndex
from viridian.service.library.store import LibraryStore
from viridian.service.library.templates import Templates
from viridian.service.library.uploads import Uploads


class LibraryCapability(Capability):
    name = "library"

    def __init__(self, context: ServiceContext) -> None:
        self.store = LibraryStore(context.catalog)
        self.index = LibraryIndex(context, self.store)
        self.uploads = Uploads(self.index)
        self.templates = Templates(context, self.store)
        self.index.extra_uses = self._template_uses

    def start(self) -> None:
        self.index.ensure_default()

    def install_routes(self, app: FastAPI) -> None:
        install_library_routes(app, self)
        install_template_routes(app, self)

    def _template_uses(self, path: Path) -> list[str]:
        """A template disk's VMs (those reading it through overlays too)."""
        for template in self.templates.all():
            for disk in template.manifest.disks:
                if template.disk_path(disk) == path:
                    name, version = template.manifest.name, template.manifest.version
                    return [f"template '{name}' v{version}",
                            *(f"VM '{vm}'" for vm in self.templates.users(name, version))]
        return []
