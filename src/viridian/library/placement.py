"""Placement (VMM's intelligent placement): every candidate host rated 0-5 stars, with
the reasons. Pure: the shell gathers :class:`HostFacts` (this host, and each Up cluster
member from the record it publishes) and shows the ratings (``vm new --dry-run``); the
cluster's failover ranks hosts by them too, after its own rules
(:mod:`viridian.cluster.placement`).

Rules (docs/architecture.md, "Library and provisioning"):

* hard limits give 0 stars and say why: not enough free memory or storage for the VM,
  a virtual switch the VM needs is missing;
* otherwise the score is the headroom left after placing the VM — memory 40 %, CPU
  (100 - the host's average busy % over the last hour of counters) 40 %, storage 20 %
  (free space; half free space, half I/O headroom — 100 - the data disk's busy %, from
  its ``% Idle Time`` over the same hour — when that is known) — mapped to 1..5 stars;
* anti-affinity: each VM of the group already on the host costs one star (the rating
  stays at least 1 while the host fits: it is a preference, not a limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HostFacts", "Rating", "VMNeeds", "best", "host_cpu_busy", "rate", "rate_all"]

MEMORY_WEIGHT, CPU_WEIGHT, STORAGE_WEIGHT = 0.4, 0.4, 0.2
MB = 1024 * 1024


@dataclass(frozen=True)
class HostFacts:
    """What a candidate host offers now. ``cpu_busy_pct`` is None when no counters are
    kept yet (then the CPU part counts as idle and a reason says so); ``disk_busy_pct``
    (the data disk's busy % over the same window) None when unknown (storage is then
    rated by free space alone)."""

    name: str
    memory_total_mb: int
    memory_free_mb: int
    cpu_busy_pct: float | None
    storage_total_bytes: int
    storage_free_bytes: int
    networks: frozenset[str]
    vms: frozenset[str]
    cpu_window_s: float = 3600.0
    disk_busy_pct: float | None = None


def host_cpu_busy(root_pct: float | None, vp_pcts: Sequence[float],
                  logical_processors: int) -> float | None:
    """The host's busy % from Hyper-V-style counters averaged over a window: the root's
    own run time (``Root Virtual Processor(_Total)``, % of all logical processors) plus
    each VM virtual processor's run time (% of one processor) shared over them; None
    when no counters were kept."""
    if root_pct is None:
        return None
    return min(100.0, root_pct + sum(vp_pcts) / max(1, logical_processors))


@dataclass(frozen=True)
class VMNeeds:
    """What the VMs to place need together (``count`` VMs of ``memory_mb`` each...)."""

    memory_mb: int
    disk_bytes: int
    networks: frozenset[str]
    anti_affinity: frozenset[str] = frozenset()
    count: int = 1


@dataclass(frozen=True)
class Rating:
    host: str
    stars: int
    score: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "stars": self.stars, "score": round(self.score, 3),
                "reasons": list(self.reasons)}


def rate(host: HostFacts, needs: VMNeeds) -> Rating:
    """The rating of ``host`` for ``needs``."""
    memory = needs.memory_mb * needs.count
    disk = needs.disk_bytes * needs.count
    refusals = _hard_limits(host, needs, memory, disk)
    if refusals:
        return Rating(host.name, 0, 0.0, refusals)
    mem_left = (host.memory_free_mb - memory) / max(host.memory_total_mb, 1)
    cpu_left = 1.0 - (host.cpu_busy_pct or 0.0) / 100
    disk_left = (host.storage_free_bytes - disk) / max(host.storage_total_bytes, 1)
    if host.disk_busy_pct is not None:
        disk_left = (disk_left + 1.0 - min(100.0, host.disk_busy_pct) / 100) / 2
    score = MEMORY_WEIGHT * mem_left + CPU_WEIGHT * cpu_left + STORAGE_WEIGHT * disk_left
    reasons = [
        f"memory: {memory} MB needed, {host.memory_free_mb} MB free "
        f"({mem_left:.0%} of {host.memory_total_mb} MB left after)",
        _cpu_reason(host.cpu_busy_pct, host.cpu_window_s),
        f"storage: {disk // MB} MB needed, {host.storage_free_bytes // MB} MB free",
    ]
    if host.disk_busy_pct is not None:
        busy = min(100.0, host.disk_busy_pct)
        reasons.append(f"storage I/O: {busy:.0f}% busy over the last "
                       f"{_window(host.cpu_window_s)} ({100 - busy:.0f}% headroom)")
    if needs.networks:
        reasons.append("networks: " + ", ".join(sorted(needs.networks)) + " present")
    stars = max(1, min(5, round(score * 5 + 0.5)))
    clash = sorted(needs.anti_affinity & host.vms)
    if clash:
        stars = max(1, stars - len(clash))
        reasons.append("anti-affinity: " + ", ".join(clash) + " already here")
    return Rating(host.name, stars, score, tuple(reasons))


def rate_all(hosts: Sequence[HostFacts], needs: VMNeeds) -> list[Rating]:
    """Every host's rating, best first (stars, then score, then name)."""
    return sorted((rate(h, needs) for h in hosts), key=lambda r: (-r.stars, -r.score, r.host))


def best(ratings: Sequence[Rating]) -> Rating | None:
    """The host to use: the first rating with at least one star, else None."""
    return next((r for r in ratings if r.stars > 0), None)


def _hard_limits(host: HostFacts, needs: VMNeeds, memory: int, disk: int) -> tuple[str, ...]:
    found = []
    if memory > host.memory_free_mb:
        found.append(f"not enough memory: {memory} MB needed, {host.memory_free_mb} MB free")
    if disk > host.storage_free_bytes:
        found.append(f"not enough storage: {disk // MB} MB needed, "
                     f"{host.storage_free_bytes // MB} MB free")
    missing = sorted(needs.networks - host.networks)
    if missing:
        found.append("missing virtual switch: " + ", ".join(missing))
    return tuple(found)


def _cpu_reason(busy: float | None, window_s: float) -> str:
    if busy is None:
        return "cpu: no counters kept yet (counted as idle)"
    return (f"cpu: {busy:.0f}% busy over the last {_window(window_s)} "
            f"({100 - busy:.0f}% headroom)")


def _window(window_s: float) -> str:
    return "hour" if window_s >= 3600 else f"{max(1, round(window_s / 60))} min"
