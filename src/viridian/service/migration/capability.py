"""The migration capability (docs/architecture.md, "Migration"): moves of VMs between
viridian hosts, as a source (:mod:`.outgoing`) and as a target (:mod:`.incoming`); in a
failover cluster, HA VMs move with the etcd hand-over (:mod:`.cluster_move`), member
hosts authorize each other with the cluster's peer token (:mod:`.cluster_peer`) and a
paused host drains by migration (:mod:`.drain`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.service.capability import Capability
from viridian.service.migration.cluster_move import ClusterOwnership
from viridian.service.migration.cluster_peer import install_peer_routes
from viridian.service.migration.drain import Drainer
from viridian.service.migration.host import MigrationHost
from viridian.service.migration.incoming import Incoming
from viridian.service.migration.outgoing import Outgoing
from viridian.service.migration.routes import install_migration_routes
from viridian.service.migration.storage_move import StorageMoves

if TYPE_CHECKING:
    from viridian.service.cluster.agent import HostAgent
    from viridian.service.cluster.capability import ClusterCapability


class Migration(Capability):
    """Quick and live moves of VMs to and from other hosts."""

    name = "migration"

    def __init__(self, host: MigrationHost) -> None:
        self.host = host
        self.ownership = ClusterOwnership(self._cluster_agent)
        self.outgoing = Outgoing(host, self.ownership)
        self.storage = StorageMoves(host)
        self.drainer = Drainer(host, self.outgoing)
        self._tasks: set[asyncio.Task[None]] = set()
        self.incoming = Incoming(host, self.ownership)

    def _cluster(self) -> ClusterCapability | None:
        from viridian.service.cluster.capability import ClusterCapability

        return next((c for c in self.host.capabilities if isinstance(c, ClusterCapability)),
                    None)

    def _cluster_agent(self) -> HostAgent | None:
        cluster = self._cluster()
        return cluster.agent if cluster is not None else None

    def drain(self) -> dict[str, Any] | None:
        """Start this host's drain job (or return the one running); None: no cluster."""
        self.drainer.agent = self._cluster_agent()
        return self.drainer.kick()

    def start(self) -> None:
        cluster = self._cluster()
        if cluster is not None:
            cluster.drainer = self.drain
        task = asyncio.get_running_loop().create_task(self.incoming.sweep())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_routes(self, app: FastAPI) -> None:
        install_migration_routes(app, self)
        install_peer_routes(app, self)

    async def close(self) -> None:
        await self.incoming.close()
