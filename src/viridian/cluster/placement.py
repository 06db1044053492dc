"""The HA controller's placement decision (docs/architecture.md, "Failover cluster"):
which host restarts which orphaned HA VM. Pure and deterministic: every host computes the
same answer from the same view, and claims only what is placed on itself.

Rules, in order (Hyper-V's failover placement):
1. VMs are placed by priority (high, medium, low; ``none`` never), then by name.
2. Only Up hosts receive VMs (a Paused/drained or Down host receives none).
3. Memory-aware admission: a VM goes only where ``memory_free_mb`` (what the host's own
   admission rules admit) still holds its memory after the VMs placed before it.
4. Among hosts that fit: fewest VMs sharing an anti-affinity class with it, then its
   preferred hosts in their order, then the most free memory, then the host name.
5. A VM that fits nowhere is Pending ("insufficient memory on every host"), and is
   placed by a later decision when capacity returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from viridian.cluster.model import ClusterVM, HostRecord, HostState

__all__ = ["PENDING_NO_HOST", "PENDING_NO_MEMORY", "Placement", "failback_moves",
           "orphans", "place"]

PENDING_NO_MEMORY = "Pending: insufficient memory on every host"
PENDING_NO_HOST = "Pending: no host is Up"


@dataclass(frozen=True)
class Placement:
    """``assigned``: VM id → host; ``pending``: VM id → why it waits."""

    assigned: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)


def orphans(vms: Iterable[ClusterVM]) -> list[ClusterVM]:
    """HA VMs the admin wants running that nobody owns, in placement order."""
    todo = [vm for vm in vms if vm.policy.restarts and vm.desired_running and vm.owner is None]
    return sorted(todo, key=lambda vm: (-vm.policy.priority.rank, vm.name, vm.id))


def _classes_on(vms: Iterable[ClusterVM]) -> dict[str, list[str]]:
    on: dict[str, list[str]] = {}
    for vm in vms:
        if vm.owner is not None:
            on.setdefault(vm.owner, []).extend(vm.policy.anti_affinity)
    return on


def place(vms: Iterable[ClusterVM], hosts: Iterable[HostRecord]) -> Placement:
    """Place every orphan of ``vms`` on the Up ``hosts`` by the rules above."""
    vms = list(vms)
    up = {h.name: h for h in hosts if h.state is HostState.UP}
    free = {name: h.memory_free_mb for name, h in up.items()}
    classes = _classes_on(vms)
    result = Placement()
    for vm in orphans(vms):
        if not up:
            result.pending[vm.id] = PENDING_NO_HOST
            continue
        fits = [name for name in up if free[name] >= vm.memory_mb]
        if not fits:
            result.pending[vm.id] = PENDING_NO_MEMORY
            continue
        best = min(fits, key=lambda name: _rank(vm, name, free, classes))
        result.assigned[vm.id] = best
        free[best] -= vm.memory_mb
        classes.setdefault(best, []).extend(vm.policy.anti_affinity)
    return result


def _rank(vm: ClusterVM, host: str, free: Mapping[str, int],
          classes: Mapping[str, list[str]]) -> tuple[int, int, int, str]:
    here = classes.get(host, [])
    clashes = sum(here.count(name) for name in vm.policy.anti_affinity)
    preferred = vm.policy.preferred_hosts
    order = preferred.index(host) if host in preferred else len(preferred)
    return clashes, order, -free[host], host


def failback_moves(vms: Iterable[ClusterVM], hosts: Iterable[HostRecord]) -> dict[str, str]:
    """VM id → its first preferred host, for running VMs with failback on whose first
    preferred host is Up, is not their owner and has the memory."""
    up = {h.name: h for h in hosts if h.state is HostState.UP}
    moves: dict[str, str] = {}
    for vm in vms:
        if not (vm.policy.failback and vm.policy.preferred_hosts and vm.owner):
            continue
        home = vm.policy.preferred_hosts[0]
        if home != vm.owner and home in up and up[home].memory_free_mb >= vm.memory_mb:
            moves[vm.id] = home
    return moves
