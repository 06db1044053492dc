"""Cluster membership requests of this host (docs/api.md, "Cluster"): create, join,
leave, show, drain and resume. etcd I/O runs off the event loop (``asyncio.to_thread``).

- create: the cluster's ``created`` key is put in a transaction (refused when the
  cluster exists), then the host joins;
- join: refused when the cluster does not exist, when this host is already a member of a
  cluster, or when another live host uses the name; the member key ``members/<host>``
  stays until the host leaves (a member without a live host record is Down);
- leave: refused while an HA VM runs here (drain first); the host's lease is revoked;
- drain / resume: ``paused/<host>`` put or deleted; a Paused host receives no VMs and
  turns its HA VMs off so the others restart them (until live migration exists).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from viridian.cluster.errors import ClusterConflict
from viridian.cluster.etcd import Compare, Etcd, Op
from viridian.cluster.model import HostState
from viridian.cluster.ownership import (
    ClusterView,
    host_key,
    member_key,
    paused_key,
    read_cluster,
    root,
)
from viridian.errors import NotFound
from viridian.service.cluster.capability import ClusterCapability
from viridian.service.cluster.cluster_wide import inherit, stamp
from viridian.service.cluster.config import ClusterConfig
from viridian.service.cluster.fence_guard import watchdog_present
from viridian.service.cluster.validate import run_validation
from viridian.service.migration.cluster_peer import (
    new_peer_token,
    peer_token_key,
    save_peer_token,
)

NOT_MEMBER = ("this host is not in a cluster; create one (viridian cluster create --etcd "
              "URL[,URL...]) or join one (viridian cluster join --etcd URL[,URL...])")


class Membership:
    def __init__(self, capability: ClusterCapability) -> None:
        self.capability = capability

    def _member_config(self) -> ClusterConfig:
        agent = self.capability.agent
        if agent is None:
            raise NotFound(NOT_MEMBER)
        return agent.config

    def _not_member(self) -> None:
        agent = self.capability.agent
        if agent is not None:
            raise ClusterConflict(
                f"this host is already host '{agent.config.host}' of cluster "
                f"'{agent.config.name}'; leave it first (viridian cluster leave); "
                "nothing was changed", cluster=agent.config.name)

    async def create(self, config: ClusterConfig) -> dict[str, Any]:
        self._not_member()
        etcd = Etcd(config.endpoints)
        key = root(config.name) + "created"
        config = inherit(config, None)  # its shared folders exist here
        made = await asyncio.to_thread(etcd.txn, [Compare(key, "CREATE", 0)],
                                       [Op("put", key, stamp(config))])
        if not made.succeeded:
            raise ClusterConflict(f"cluster '{config.name}' already exists in this etcd; "
                                  "join it (viridian cluster join); nothing was changed",
                                  cluster=config.name)
        return await self.join(config)

    async def join(self, config: ClusterConfig) -> dict[str, Any]:
        self._not_member()
        etcd = Etcd(config.endpoints)
        view = await asyncio.to_thread(read_cluster, etcd, config.name)
        if not view.created:
            raise NotFound(f"no cluster '{config.name}' in etcd at "
                           f"{', '.join(config.endpoints)}; create it (viridian cluster "
                           "create); nothing was changed", cluster=config.name)
        if any(h.name == config.host for h in view.hosts):
            raise ClusterConflict(f"host name '{config.host}' is used by a live host of "
                                  f"cluster '{config.name}'; choose another (--host); "
                                  "nothing was changed", host=config.host)
        created = await asyncio.to_thread(etcd.get, root(config.name) + "created")
        config = inherit(config, created.value if created else None)
        member = json.dumps({"site": config.site, "joined": time.time()})
        await asyncio.to_thread(etcd.put, member_key(config.name, config.host), member)
        await asyncio.to_thread(self._copy_peer_token, etcd, config.name)
        self.capability.folder.save(config)
        self.capability.run(config)
        return await self.show()

    def _copy_peer_token(self, etcd: Etcd, cluster: str) -> None:
        """The cluster's peer token (made by the first host to need it) into
        ``<data>/cluster/peer.token`` (docs/architecture.md, "moves of HA VMs")."""
        key = peer_token_key(root(cluster))
        etcd.txn([Compare(key, "CREATE", 0)], [Op("put", key, new_peer_token())])
        found = etcd.get(key)
        if found is not None:
            save_peer_token(self.capability.context.data_dir, found.value)

    async def leave(self) -> dict[str, Any]:
        config = self._member_config()
        agent = self.capability.agent
        assert agent is not None
        running = sorted(vm.record.name for vm in agent.ha_vms().values()
                         if vm.worker is not None)
        if running:
            raise ClusterConflict(
                f"HA VMs run on this host: {', '.join(running)}; drain the host (viridian "
                "host drain) or stop them first; nothing was changed", vms=running)
        await asyncio.to_thread(agent.leave)
        for key in (member_key(config.name, config.host), paused_key(config.name, config.host),
                    host_key(config.name, config.host)):
            await asyncio.to_thread(agent.etcd.delete, key)
        self.capability.folder.forget()
        self.capability.agent = None
        return {"left": config.name, "host": config.host}

    async def show(self) -> dict[str, Any]:
        config = self._member_config()
        agent = self.capability.agent
        assert agent is not None
        view = await asyncio.to_thread(read_cluster, agent.etcd, config.name)
        health = [{**m, "site": config.etcd_site(m["endpoint"])}
                  for m in await asyncio.to_thread(agent.etcd.member_health)]
        return {"name": config.name, "host": config.host, "site": config.site,
                "shared": list(config.shared),
                "lease_ttl": config.lease_ttl, "fence_margin_s": config.rule.margin,
                "watchdog": {"requested": config.watchdog, "present": watchdog_present()},
                "agent": {"lease": f"{agent.core.lease:x}", "fenced": agent.core.fenced,
                          "error": agent.last_error},
                "hosts": hosts_of(view), "vms": vms_of(view, agent.pending, agent.placed),
                "etcd": {"endpoints": list(agent.etcd.endpoints), "members": health,
                         "healthy": sum(1 for m in health if m["healthy"])}}

    async def validate(self) -> dict[str, Any]:
        """``cluster validate``'s report (``viridian.service.cluster.validate``)."""
        self._member_config()
        agent = self.capability.agent
        assert agent is not None
        return await asyncio.to_thread(run_validation, agent)

    async def pause(self, host: str, paused: bool) -> dict[str, Any]:
        config = self._member_config()
        agent = self.capability.agent
        assert agent is not None
        view = await asyncio.to_thread(read_cluster, agent.etcd, config.name)
        if host not in view.members:
            raise NotFound(f"no host '{host}' in cluster '{config.name}'; members: "
                           f"{', '.join(sorted(view.members)) or 'none'}", host=host)
        key = paused_key(config.name, host)
        if paused:
            await asyncio.to_thread(agent.etcd.put, key, json.dumps({"at": time.time()}))
        else:
            await asyncio.to_thread(agent.etcd.delete, key)
        state = HostState.PAUSED if paused else HostState.UP
        answer: dict[str, Any] = {"host": host, "state": state.value}
        if paused:
            answer["note"] = ("its HA VMs move to the other hosts (live; quick when a "
                              "storage daemon serves their disks) as a drain job there; "
                              "what cannot move is turned off and restarted elsewhere by "
                              "the failover path")
            drainer = self.capability.drainer
            job = drainer() if drainer is not None and host == config.host else None
            if job is not None:
                answer["job"] = job
        return answer


def hosts_of(view: ClusterView) -> list[dict[str, Any]]:
    live = {h.name: h for h in view.hosts}
    rows = []
    for name in sorted(set(view.members) | set(live)):
        record = live.get(name)
        state = (HostState.PAUSED if name in view.paused else record.state) if record \
            else HostState.DOWN
        rows.append({"name": name, "state": state.value,
                     "site": record.site if record else "",
                     "memory_total_mb": record.memory_total_mb if record else None,
                     "memory_free_mb": record.memory_free_mb if record else None,
                     "running_vms": list(record.running) if record else [],
                     "api": record.api if record else ""})
    return rows


def vms_of(view: ClusterView, pending: Mapping[str, str],
           placed: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The HA VMs as ``cluster show`` lists them; ``placed``: why the failover last put
    each where it did (the placement's reason; None before any failover of it)."""
    placed = placed or {}
    return [{"id": vm.id, "name": vm.name, "owner": vm.owner,
             "desired_running": vm.desired_running, "memory_mb": vm.memory_mb,
             "policy": vm.policy.to_dict(), "pending": pending.get(vm.id),
             "placed": placed.get(vm.id)}
            for vm in sorted(view.vms, key=lambda v: v.name)]
