"""A host agent's decisions, pure (docs/architecture.md, "Failover cluster"): given what
the host last read of the cluster and what runs locally, what to claim, start and kill.
The service's shell (``viridian.service.cluster``) and the simulator
(:mod:`viridian.cluster.simulator`) both drive this one logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HostRecord
from viridian.cluster.placement import failback_moves, place

__all__ = ["AgentCore", "Plan"]


@dataclass(frozen=True)
class Plan:
    """``claim``: VM ids to take ownership of (an etcd transaction each, then start);
    ``start``: owned VMs to (re)start; ``kill``: local HA VMs to turn off hard;
    ``release``: owned VMs the host no longer runs and should let go; ``failback``: owned
    VMs running here that go back to their first preferred host (stopped here, then
    released still wanted running: that host claims them by placement)."""

    claim: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    kill: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    failback: tuple[str, ...] = ()


@dataclass
class AgentCore:
    """The state a host agent keeps between ticks: the send time of its last good
    keepalive (local monotonic clock) and whether it is fenced."""

    host: str
    rule: FenceRule
    lease: int = 0
    renewed_at: float | None = None
    fenced: bool = False
    started: set[str] = field(default_factory=set)

    def renewed(self, sent_at: float, ttl: int) -> None:
        """A keepalive sent at ``sent_at`` was answered with ``ttl`` (0: the lease is gone:
        the host is fenced until it has a new lease and no VM of the old one)."""
        if ttl <= 0:
            self.renewed_at = None
            self.fenced = True
            return
        if self.renewed_at is None or sent_at > self.renewed_at:
            self.renewed_at = sent_at
        # still the lease's holder: what it owns is still its own (a fenced VM restarts)
        self.fenced = False

    def new_lease(self, lease: int, sent_at: float) -> None:
        """A new ``lease`` granted by a request sent at ``sent_at``: the host is a member
        again, owning nothing."""
        self.lease = lease
        self.renewed_at = sent_at
        self.fenced = False

    def owns(self, vm: ClusterVM) -> bool:
        """Owned through this host's current lease (its name alone is not enough)."""
        return vm.owner == self.host and self.lease != 0 and vm.owner_lease == self.lease

    def must_fence(self, now: float) -> bool:
        return self.renewed_at is None or now >= self.rule.deadline(self.renewed_at)

    def fence_plan(self, local_ha: Iterable[str]) -> Plan:
        """Everything HA that runs here goes off."""
        self.fenced = True
        return Plan(kill=tuple(sorted(local_ha)))

    def plan(self, now: float, vms: Iterable[ClusterVM], hosts: Iterable[HostRecord],
             local_running: Set[str], hour: int | None = None) -> Plan:
        """What to do after reading ``vms`` (with owners) and ``hosts`` from etcd;
        ``local_running``: ids of VMs whose QEMU runs on this host; ``hour``: the local
        hour (0-23) for failback windows."""
        vms = list(vms)
        ha = {vm.id: vm for vm in vms if vm.policy.ha}
        if self.must_fence(now) or self.fenced:
            return self.fence_plan(i for i in local_running if i in ha)
        mine = [vm for vm in ha.values() if self.owns(vm)]
        kill = [i for i in local_running if i in ha and not self.owns(ha[i])]
        release = [vm.id for vm in mine if not vm.desired_running
                   and vm.id not in local_running]
        may_start = self.rule.may_start(now, self.renewed_at)
        start = [vm.id for vm in mine if vm.desired_running and vm.id not in local_running
                 and may_start]
        placement = place(vms, hosts)
        claim = [i for i, host in placement.assigned.items() if host == self.host and may_start]
        back = [i for i in failback_moves(vms, hosts, hour) if i in local_running
                and i in ha and self.owns(ha[i])]
        return Plan(claim=tuple(sorted(claim)), start=tuple(sorted(start)),
                    kill=tuple(sorted(kill)), release=tuple(sorted(release)),
                    failback=tuple(sorted(back)))
