"""The HA controller's placement decision (docs/architecture.md, "Failover cluster"):
which host restarts which orphaned HA VM. Pure and deterministic: every host computes the
same answer from the same view, and claims only what is placed on itself.

Rules, in order (Hyper-V's failover placement, with its site awareness):
1. VMs are placed by priority (high, medium, low; ``none`` never), then by name.
2. Only Up hosts receive VMs (a Paused/drained or Down host receives none).
3. Memory-aware admission: a VM goes only where ``memory_free_mb`` (what the host's own
   admission rules admit) still holds its memory after the VMs placed before it.
4. Among hosts that fit: a host of the VM's preferred site first (when the VM names one;
   a VM fails over to another site only when no host of its site is Up with the memory),
   then the fewest of the host switches its adapters need missing (a VM restarts without
   its network only where no host with the memory has it; the rating says which is
   missing), then the fewest VMs sharing an anti-affinity class with it, then its
   preferred hosts in their order, then the most placement stars (:func:`rating`: the
   0-5 star rating of provisioning, :func:`viridian.library.placement.rate`, from the
   facts the host published, its memory after the VMs placed before it), then the most
   free memory, then the host name.
5. A VM that fits nowhere is Pending ("insufficient memory on every host"), and is
   placed by a later decision when capacity returns.

Every placed VM gets a reason (``Placement.reasons``) naming the host and the facts that
chose it, the stars with the rating's reasons among them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from viridian.cluster.model import ClusterVM, HostRecord, HostState
from viridian.library.placement import HostFacts, Rating, VMNeeds, rate

__all__ = ["NO_FACTS", "PENDING_NO_HOST", "PENDING_NO_MEMORY", "Placement", "failback_moves",
           "orphans", "place", "rating", "record_facts"]

PENDING_NO_MEMORY = "Pending: insufficient memory on every host"
PENDING_NO_HOST = "Pending: no host is Up"
NO_FACTS = "no CPU or storage facts published (CPU counted idle, storage as none)"


@dataclass(frozen=True)
class Placement:
    """``assigned``: VM id → host; ``pending``: VM id → why it waits; ``reasons``: VM id
    → why its host was chosen."""

    assigned: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


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
        rated = {name: rating(vm, up[name], free[name]) for name in fits}
        best = min(fits, key=lambda name: _rank(vm, up[name], free, classes, rated[name]))
        result.assigned[vm.id] = best
        result.reasons[vm.id] = _reason(vm, up[best], up, fits, free, classes, rated[best])
        free[best] -= vm.memory_mb
        classes.setdefault(best, []).extend(vm.policy.anti_affinity)
    return result


def _clashes(vm: ClusterVM, host: str, classes: Mapping[str, list[str]]) -> int:
    here = classes.get(host, [])
    return sum(here.count(name) for name in vm.policy.anti_affinity)


def record_facts(record: HostRecord, memory_free_mb: int | None = None) -> HostFacts:
    """A member host's placement facts from the host record it published (memory: what
    its admission would still give, or ``memory_free_mb`` when given; VMs: those running
    there). A record without facts (published by an older host) reads as the record says:
    CPU unknown (counted idle), no storage, no switches."""
    free = record.memory_free_mb if memory_free_mb is None else memory_free_mb
    return HostFacts(record.name, record.memory_total_mb, free, record.cpu_busy_pct,
                     record.storage_total_bytes, record.storage_free_bytes,
                     frozenset(record.switches), frozenset(record.running),
                     disk_busy_pct=record.disk_busy_pct)


def needed_switches(vm: ClusterVM) -> frozenset[str]:
    """The host switches ``vm``'s adapters need (its cluster record's ``switches``; none
    for a record written before they were published)."""
    found = vm.settings.get("switches", ())
    return frozenset(str(s) for s in found) if isinstance(found, (list, tuple)) else frozenset()


def rating(vm: ClusterVM, host: HostRecord, memory_free_mb: int) -> Rating:
    """How ``host`` (with ``memory_free_mb`` left) rates for restarting ``vm``: the
    provisioning rating of its published facts for the VM's memory and switches (a
    missing switch: 0 stars). No disk is needed (the VM's disks stay on the shared
    storage; free space and I/O headroom still count); anti-affinity is the earlier
    rule's (classes, not VM names). A record without facts (no storage published: an
    older host) is rated as :func:`record_facts` reads it, and its reasons say so."""
    rated = rate(record_facts(host, memory_free_mb),
                 VMNeeds(vm.memory_mb, 0, needed_switches(vm)))
    if host.storage_total_bytes > 0:
        return rated
    return replace(rated, reasons=(*rated.reasons[:1], NO_FACTS))


def _rank(vm: ClusterVM, host: HostRecord, free: Mapping[str, int],
          classes: Mapping[str, list[str]], rated: Rating
          ) -> tuple[int, int, int, int, int, int, str]:
    site = vm.policy.preferred_site
    away = 1 if site and host.site != site else 0
    lacking = len(needed_switches(vm) - frozenset(host.switches))
    preferred = vm.policy.preferred_hosts
    order = preferred.index(host.name) if host.name in preferred else len(preferred)
    return (away, lacking, _clashes(vm, host.name, classes), order, -rated.stars,
            -free[host.name], host.name)


def _reason(vm: ClusterVM, host: HostRecord, up: Mapping[str, HostRecord], fits: list[str],
            free: Mapping[str, int], classes: Mapping[str, list[str]], rated: Rating) -> str:
    """Why ``host`` was chosen for ``vm``, in words (shown by ``cluster show``)."""
    parts = [f"{host.name}"]
    site = vm.policy.preferred_site
    if site and host.site == site:
        parts.append(f"in preferred site {site}")
    elif site:
        home = [n for n, h in up.items() if h.site == site]
        why = ("no host of it is Up" if not home
               else "no Up host of it has the memory" if not set(home) & set(fits) else "")
        parts.append(f"failed over from site {site} to site {host.site or '-'} ({why})"
                     if why else f"site {host.site or '-'}")
    clashes = _clashes(vm, host.name, classes)
    if vm.policy.anti_affinity:
        parts.append(f"{clashes} anti-affinity clash{'es' if clashes != 1 else ''}")
    if host.name in vm.policy.preferred_hosts:
        parts.append(f"preferred host #{vm.policy.preferred_hosts.index(host.name) + 1}")
    parts.append(f"{rated.stars}★ ({'; '.join(rated.reasons)})")
    parts.append(f"{free[host.name]} MB free")
    return ", ".join(parts)


def failback_moves(vms: Iterable[ClusterVM], hosts: Iterable[HostRecord],
                   hour: int | None = None) -> dict[str, str]:
    """VM id → its first preferred host, for running VMs with failback on whose first
    preferred host is Up, is not their owner, and is where :func:`place` would put the VM
    if it were orphaned now (its memory back on its owner): the move then lands on that
    host and never bounces between hosts. A VM with a failback window moves only when
    ``hour`` (the host's local hour) is in it; with ``hour`` None only VMs without one."""
    vms, hosts = list(vms), list(hosts)
    up = {h.name: h for h in hosts if h.state is HostState.UP}
    moves: dict[str, str] = {}
    for vm in vms:
        if not (vm.policy.failback and vm.policy.preferred_hosts and vm.owner
                and vm.desired_running):
            continue
        window_open = vm.policy.failback_window is None or (
            hour is not None and vm.policy.may_fail_back(hour))
        if not window_open:
            continue
        home = vm.policy.preferred_hosts[0]
        if home == vm.owner or home not in up or up[home].memory_free_mb < vm.memory_mb:
            continue
        freed = [replace(h, memory_free_mb=h.memory_free_mb + vm.memory_mb)
                 if h.name == vm.owner else h for h in hosts]
        others = [v for v in vms if v.id != vm.id and v.owner is not None]
        if place([*others, replace(vm, owner=None, owner_lease=0)], freed).assigned.get(
                vm.id) == home:
            moves[vm.id] = home
    return moves
