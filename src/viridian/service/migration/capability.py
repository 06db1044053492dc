"""The migration capability (docs/architecture.md, "Migration"): moves of VMs between
viridian hosts, as a source (:mod:`.outgoing`) and as a target (:mod:`.incoming`)."""

from __future__ import annotations

import asyncio
import socket

from fastapi import FastAPI

from viridian.service.capability import Capability
from viridian.service.migration.host import MigrationHost
from viridian.service.migration.incoming import Incoming
from viridian.service.migration.outgoing import Outgoing
from viridian.service.migration.ownership import HostRegistration, Ownership
from viridian.service.migration.routes import install_migration_routes
from viridian.service.migration.storage_move import StorageMoves


class Migration(Capability):
    """Quick and live moves of VMs to and from other hosts."""

    name = "migration"

    def __init__(self, host: MigrationHost, ownership: Ownership | None = None) -> None:
        self.host = host
        self.outgoing = Outgoing(host)
        self.storage = StorageMoves(host)
        self._tasks: set[asyncio.Task[None]] = set()
        self.incoming = Incoming(host, ownership or HostRegistration(), socket.gethostname())

    def start(self) -> None:
        task = asyncio.get_running_loop().create_task(self.incoming.sweep())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_routes(self, app: FastAPI) -> None:
        install_migration_routes(app, self)

    async def close(self) -> None:
        await self.incoming.close()
