"""The library capability: registered libraries (a ``default`` one at
``<data>/library``), their index and resumable uploads (docs/architecture.md, "Library
and provisioning")."""

from __future__ import annotations

from fastapi import FastAPI

from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.library.routes import install_library_routes
from viridian.service.library.shares import LibraryIndex
from viridian.service.library.store import LibraryStore
from viridian.service.library.uploads import Uploads


class LibraryCapability(Capability):
    name = "library"

    def __init__(self, context: ServiceContext) -> None:
        self.store = LibraryStore(context.catalog)
        self.index = LibraryIndex(context, self.store)
        self.uploads = Uploads(self.index)

    def start(self) -> None:
        self.index.ensure_default()

    def install_routes(self, app: FastAPI) -> None:
        install_library_routes(app, self)
