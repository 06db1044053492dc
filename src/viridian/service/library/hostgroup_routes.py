"""HTTP routes of host groups (docs/api.md, "Host groups"; the tree is
:mod:`viridian.access.hostgroups`, kept in the access store)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from viridian.access import AccessControl
from viridian.access.hostgroups import HostGroups
from viridian.config import API_PREFIX
from viridian.service.http_boundary import RequestBody

P = f"{API_PREFIX}/hostgroups"


class NewGroup(RequestBody):
    path: str


class Placement(RequestBody):
    group: str


class GroupQuota(RequestBody):
    group: str
    vms: int | None = None
    memory_mb: int | None = None
    processors: int | None = None
    disk_mb: int | None = None


def install_hostgroup_routes(app: FastAPI, groups: HostGroups, access: AccessControl) -> None:
    @app.get(P, tags=["library"])
    async def hostgroup_list() -> dict[str, Any]:
        """Every group (``path``, ``parent``, ``children``, ``hosts``) and each placed
        host's group (hosts not listed are in ``All Hosts``)."""
        return {"groups": groups.listing(), "hosts": groups.hosts()}

    @app.post(P, status_code=201, tags=["library"])
    async def hostgroup_new(body: NewGroup) -> dict[str, Any]:
        return groups.new(body.path)

    @app.put(f"{P}/hosts/{{host}}", tags=["library"])
    async def hostgroup_add_host(host: str, body: Placement) -> dict[str, Any]:
        """Put ``host`` into a group (a host is in one group)."""
        return groups.add_host(host, body.group)

    @app.get(f"{P}/quotas/{{user}}", tags=["library"])
    async def hostgroup_quotas(user: str) -> dict[str, Any]:
        """``user``'s quotas scoped to host groups."""
        access.show_user(user)
        return {"user": user, "quotas": groups.quotas(user)}

    @app.put(f"{P}/quotas/{{user}}", tags=["library"])
    async def hostgroup_quota_set(user: str, body: GroupQuota) -> dict[str, Any]:
        """Limit what ``user``'s VMs on the hosts under ``group`` add up to (every limit
        null: the group quota is removed)."""
        access.show_user(user)
        return groups.set_quota(user, body.group, body.model_dump(exclude={"group"}))

    @app.get(f"{P}/{{path:path}}", tags=["library"])
    async def hostgroup_show(path: str) -> dict[str, Any]:
        return groups.show(path)

    @app.delete(f"{P}/{{path:path}}", tags=["library"])
    async def hostgroup_remove(path: str) -> dict[str, Any]:
        """Remove an empty group (no child groups, hosts or grants on it)."""
        return groups.remove(path, [g.scope for g in access.policy.grants])
