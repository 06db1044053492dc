"""HTTP routes of the failover cluster (docs/api.md, "Cluster")."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.config import API_PREFIX
from viridian.service.cluster.config import ClusterConfig
from viridian.service.cluster.membership import Membership
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.cluster.capability import ClusterCapability

PREFIX = f"{API_PREFIX}/cluster"


class ClusterBody(RequestBody):
    etcd: str
    name: str = "viridian"
    host: str | None = None
    site: str = ""
    lease_ttl: int = 10
    watchdog: bool = False
    shared: list[str] = []
    etcd_sites: dict[str, str] = {}

    def config(self) -> ClusterConfig:
        return ClusterConfig.parse(self.name, self.etcd, self.host or socket.gethostname(),
                                   self.site, self.lease_ttl, self.watchdog,
                                   tuple(self.shared), self.etcd_sites)


def install_cluster_routes(app: FastAPI, capability: ClusterCapability) -> None:
    members = Membership(capability)

    @app.post(PREFIX, status_code=201, tags=["cluster"])
    async def cluster_create(body: ClusterBody) -> dict[str, Any]:
        return await members.create(body.config())

    @app.post(f"{PREFIX}/join", tags=["cluster"])
    async def cluster_join(body: ClusterBody) -> dict[str, Any]:
        return await members.join(body.config())

    @app.post(f"{PREFIX}/leave", tags=["cluster"])
    async def cluster_leave() -> dict[str, Any]:
        return await members.leave()

    @app.get(PREFIX, tags=["cluster"])
    async def cluster_show() -> dict[str, Any]:
        return await members.show()

    @app.post(f"{PREFIX}/validate", tags=["cluster"])
    async def cluster_validate() -> dict[str, Any]:
        return await members.validate()

    @app.post(f"{PREFIX}/hosts/{{host}}/drain", tags=["cluster"])
    async def host_drain(host: str) -> dict[str, Any]:
        return await members.pause(host, True)

    @app.post(f"{PREFIX}/hosts/{{host}}/resume", tags=["cluster"])
    async def host_resume(host: str) -> dict[str, Any]:
        return await members.pause(host, False)
