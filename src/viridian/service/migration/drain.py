"""Drain by migration (docs/architecture.md, "Failover cluster: drain"): Hyper-V's "pause
node" moves the paused host's running HA VMs to the other hosts before anything is
turned off.

One ``drain`` job at a time (a host job: no VM's queue). It places the host's running
HA VMs it owns by the failover placement rules (priority order; Up hosts only, not this
one; memory-aware; anti-affinity, preferred hosts, most free memory) as if they were
orphans, then moves each to its host — **live** when QEMU serves its disks, **quick**
when a storage daemon does (VHD/VHDX: QEMU 7.2 cannot hand an open image between
daemons) — through the member's peer routes with the cluster's peer token. A VM no host
can take (no memory), or whose move failed, is turned off and left to the failover path
(released, still wanted running: it starts where capacity is, or stays Pending); the
job's result names each VM, where it went, or why it was turned off.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from viridian.cluster.model import ClusterVM, HostState
from viridian.cluster.placement import place
from viridian.errors import ViridianError
from viridian.model.states import Request
from viridian.service.jobs import Job
from viridian.service.migration.bodies import Mode, MoveRequest
from viridian.service.migration.host import MigrationHost
from viridian.service.migration.outgoing import LIVE_TIMEOUT_S, Outgoing

if TYPE_CHECKING:
    from viridian.service.cluster.agent import HostAgent
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

__all__ = ["Drainer", "drain_plan"]

RETRY_S = 15.0
"""A drain job that left HA VMs running here (a stop failed) is tried again after this."""


def drain_plan(agent: HostAgent, running: dict[str, LiveVM]) -> tuple[
        list[tuple[ClusterVM, str]], list[tuple[ClusterVM, str]]]:
    """(VM, target host) to move and (VM, why) to turn off, for the HA VMs of ``running``
    this host owns, from the agent's last view of the cluster."""
    view = agent.view
    if view is None:
        return [], []
    me = agent.config.host
    mine = [vm for vm in view.vms if vm.id in running and agent.core.owns(vm)]
    ids = {vm.id for vm in mine}
    as_orphans = [replace(vm, owner=None, owner_lease=0, desired_running=True)
                  if vm.id in ids else vm for vm in view.vms]
    hosts = [h for h in view.hosts if h.name != me and h.name not in view.paused
             and h.state is HostState.UP]
    placement = place(as_orphans, hosts)
    order = sorted(mine, key=lambda vm: (-vm.policy.priority.rank, vm.name, vm.id))
    moves = [(vm, placement.assigned[vm.id]) for vm in order if vm.id in placement.assigned]
    stays = [(vm, placement.pending.get(vm.id, "its priority is none (never moved)"))
             for vm in order if vm.id not in placement.assigned]
    return moves, stays


class Drainer:
    """The drain jobs of this host."""

    def __init__(self, host: MigrationHost, outgoing: Outgoing) -> None:
        self.host = host
        self.outgoing = outgoing
        self.agent: HostAgent | None = None
        self._job: Job | None = None
        self._ended = 0.0

    def kick(self) -> dict[str, Any] | None:
        """Start the drain job unless one runs (on the event loop); the job, or None when
        this host is in no cluster."""
        agent = self.agent
        if agent is None:
            return None
        if self._job is not None and (self._job.finished_at is None
                                      or time.monotonic() - self._ended < RETRY_S):
            return self._job.to_dict()
        self._job = self.host.jobs.submit("drain", None, None, self._run)
        return self._job.to_dict()

    async def _run(self, job: Job) -> dict[str, Any]:
        try:
            return await self._drain(job)
        finally:
            self._ended = time.monotonic()

    async def _drain(self, job: Job) -> dict[str, Any]:
        agent = self.agent
        assert agent is not None
        running = {i: vm for i, vm in self.host.vms().items()
                   if vm.record.settings.high_availability.ha and vm.worker is not None
                   and i not in agent.moving}
        moves, stays = drain_plan(agent, running)
        moved: list[dict[str, Any]] = []
        off: list[dict[str, Any]] = []
        total = max(len(moves) + len(stays), 1)
        for done, (vm, target) in enumerate(moves):
            live = running[vm.id]
            mode: Mode = "quick" if live.storage_daemon_serves else "live"
            job.report(100 * done / total, f"moving {vm.name} to {target} ({mode})")
            why = await self._move(live, target, mode)
            if why is None:
                moved.append({"vm": vm.name, "to": target, "mode": mode})
            else:
                stays.append((vm, why))
        for done, (vm, why) in enumerate(stays, start=len(moved)):
            job.report(100 * done / total, f"turning {vm.name} off: {why}")
            off.append({"vm": vm.name, "why": why,
                        "turned_off": await self._turn_off(agent, running[vm.id])})
        return {"host": agent.config.host, "moved": moved, "turned_off": off}

    async def _move(self, live: LiveVM, target: str, mode: Mode) -> str | None:
        """Move ``live`` to member ``target``; None when it moved, else why not."""
        try:
            spec = MoveRequest(to=target, mode=mode, bandwidth_mib_s=None,
                               downtime_limit_ms=None)
            job = self.outgoing.move(live.record.id, spec)
            done = await self.host.jobs.wait(job["id"], LIVE_TIMEOUT_S)
        except ViridianError as err:
            return f"the {mode} move to {target} was refused: {err}"
        if done.get("state") == "completed":
            return None
        error = (done.get("error") or {}).get("message", done.get("state"))
        return f"the {mode} move to {target} failed: {error}"

    async def _turn_off(self, agent: HostAgent, live: LiveVM) -> bool:
        """Turn ``live`` off for the failover path (released, still wanted running)."""
        if live.worker is None:
            return False
        agent.folder.mark(live.record.id, "drain")
        job = self.host.jobs.submit("stop", live.record.id, live.record.name,
                                    self.host.operation(live, Request.STOP))
        await job.done.wait()
        return job.state == "completed"
