"""Moves of HA VMs between hosts of one failover cluster (docs/architecture.md,
"Failover cluster: moves of HA VMs").

:class:`ClusterOwnership` is the :class:`~viridian.service.migration.ownership.Ownership`
of a cluster member: the switch-over of a move is ``cluster.ownership.hand_over`` — the
owner key goes from the source's lease to this host's lease in ONE etcd transaction,
guarded by the source's lease still holding it and this host's record living under its
lease. VMs that are not HA, and hosts not in a cluster, fall back to the catalogs
(:class:`HostRegistration`). Etcd I/O runs off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from viridian.cluster.errors import ClusterConflict
from viridian.cluster.model import HostRecord
from viridian.cluster.ownership import claim, hand_over, host_key, owner
from viridian.errors import BadRequest
from viridian.service.migration.ownership import Holder, HostRegistration

if TYPE_CHECKING:
    from viridian.service.cluster.agent import HostAgent

__all__ = ["ClusterOwnership"]


class ClusterOwnership:
    """Ownership through the cluster agent ``agent()`` (None: not in a cluster)."""

    def __init__(self, agent: Callable[[], HostAgent | None]) -> None:
        self._agent = agent
        self._plain = HostRegistration()

    def _member(self, ha: bool) -> HostAgent | None:
        agent = self._agent()
        return agent if ha and agent is not None else None

    def me(self) -> Holder:
        agent = self._agent()
        if agent is None:
            return self._plain.me()
        return Holder(agent.config.host, agent.core.lease)

    async def hand_over(self, vm_id: str, ha: bool, source: Holder) -> None:
        agent = self._member(ha)
        if agent is None:
            return
        name, host, lease = agent.config.name, agent.config.host, agent.core.lease
        if not lease:
            raise ClusterConflict("this host has no cluster lease (etcd unreachable or "
                                  "fenced): it cannot take the VM; nothing was changed")
        if source.lease:
            moved = await asyncio.to_thread(hand_over, agent.etcd, name, vm_id, source.lease,
                                            host, lease)
        else:  # the source is no member: the VM joins the cluster here, if nobody owns it
            moved = await asyncio.to_thread(claim, agent.etcd, name, vm_id, host, lease)
        if not moved:
            held = await asyncio.to_thread(owner, agent.etcd, name, vm_id)
            where = held.value if held else "nobody (the source's lease is gone)"
            raise ClusterConflict(
                f"the cluster hand-over of VM {vm_id} from host '{source.host}' was refused: "
                f"its owner is {where}; the VM does not run here; nothing was changed",
                vm=vm_id, owner=held.value if held else None)

    async def hand_back(self, vm_id: str, ha: bool, source: Holder) -> bool:
        agent = self._member(ha)
        if agent is None or not source.lease:
            return True
        return await asyncio.to_thread(hand_over, agent.etcd, agent.config.name, vm_id,
                                       agent.core.lease, source.host, source.lease)

    async def holds(self, vm_id: str, ha: bool, holder: Holder) -> bool:
        agent = self._member(ha)
        if agent is None or not holder.lease:
            return True
        held = await asyncio.to_thread(owner, agent.etcd, agent.config.name, vm_id)
        return held is not None and held.value == holder.host and held.lease == holder.lease

    def member_url(self, to: str) -> str | None:
        """The service URL of the member host ``to`` names (see :func:`_member_url`).

        :raises BadRequest: that host publishes this host's own URL (a loopback listen
            address seen from another machine or network namespace): unreachable.
        """
        agent = self._agent()
        url = _member_url(agent, to)
        if url is not None and agent is not None and agent.view is not None and any(
                h.name == agent.config.host and h.api == url for h in agent.view.hosts):
            raise BadRequest(f"host '{to}' publishes the service URL {url}, the same as this "
                             "host's: it is not reachable from here (listen on an address "
                             "the other hosts reach); nothing was changed", to=to)
        return url

    def member_name(self, url: str) -> str | None:
        """The cluster host name of the member that publishes ``url`` (None: none)."""
        found = self._publishing(url)
        return found[0].name if found else None

    def member_certificate(self, url: str) -> str:
        """The certificate the member that publishes ``url`` published with it (peers
        pin it: ``service.tls.peer_verify``); "" for none or plain HTTP."""
        found = self._publishing(url)
        return found[0].certificate if found else ""

    def _publishing(self, url: str) -> list[HostRecord]:
        agent = self._agent()
        view = agent.view if agent is not None else None
        return [h for h in (view.hosts if view is not None else ())
                if h.api and h.api == url.rstrip("/")]

    async def target_gone(self, vm_id: str, ha: bool, me: Holder, target: str | None,
                          poll_s: float = 1.0) -> bool:
        """After a commit whose answer was lost: True once it is certain the target
        ``target`` (a member's name) can never take the VM — its host record (bound to
        its lease) is gone while ``me`` still owns the VM (the hand-over is guarded by
        both); then the source may resume it. False when ``me`` no longer owns it, when
        ``target`` is unknown, or when the target's lease outlives TTL + 5 s (it lives:
        the admin decides)."""
        agent = self._member(ha)
        if agent is None or target is None or not me.lease:
            return False
        key = host_key(agent.config.name, target)
        until = asyncio.get_running_loop().time() + agent.config.lease_ttl + 5.0
        while asyncio.get_running_loop().time() < until:
            if not await self.holds(vm_id, ha, me):
                return False
            if await asyncio.to_thread(agent.etcd.get, key) is None:
                return await self.holds(vm_id, ha, me)
            await asyncio.sleep(poll_s)
        return False

    def moving(self, vm_id: str, ha: bool, on: bool) -> None:
        agent = self._member(ha)
        if agent is None:
            return
        if on:
            agent.moving.add(vm_id)
            agent.folder.mark(vm_id, "move")  # its QEMU ending (a save) is no stop
        else:
            agent.moving.discard(vm_id)
            mark = agent.folder.take_mark(vm_id)
            if mark not in (None, "move"):  # set by the agent meanwhile (fenced): kept
                agent.folder.mark(vm_id, mark)
            agent.feed_now()  # a VM that arrived is guarded at once


def _member_url(agent: HostAgent | None, to: str) -> str | None:
    """The service URL of the member host ``to`` names — its cluster host name, or the URL
    its host record publishes — or None when ``to`` is no Up/Paused member (or this host
    is in no cluster). Read from the agent's last view of the cluster."""
    view = agent.view if agent is not None else None
    if view is None:
        return None
    for host in view.hosts:
        if host.api and (host.name == to or host.api == to.rstrip("/")):
            return host.api
    return None
