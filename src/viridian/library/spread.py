"""Spreading a batch of VMs over the candidate hosts (``vm new --count N``; docs/
architecture.md, "Library and provisioning"). Pure, over :mod:`viridian.library.placement`.

The rule (SCVMM places each VM of a batch in turn): VM 1 of the batch goes to the host
:func:`~viridian.library.placement.rate_all` rates best for ONE VM; that host's facts then
lose the VM's memory and storage and gain the VM's name (so the group's anti-affinity costs
it a star for the next VM); VM 2 is rated on the updated facts, and so on. A batch stays
on the best host while it is clearly best and spreads when that host fills up (or when
anti-affinity has taken its lead). The VMs keep the names and positions of the whole
batch (``web-1..web-N``: position ``i`` is VM ``i``'s name, host name and static address
whichever host makes it).

When the hosts together have no room for the batch, nothing is placed:
:class:`~viridian.errors.AdmissionRefused` says how much the batch needs and what each host
has, e.g. "the hosts have no room for 20 VMs: 20 VMs of 512 MB need 10240 MB of memory,
the hosts have 4096 MB (h1) + 2048 MB (h2) + 1024 MB (h3) free (room for 14 of them);
nothing was changed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from viridian.errors import AdmissionRefused
from viridian.library.placement import MB, HostFacts, Rating, VMNeeds, best, rate_all

__all__ = ["Share", "Spread", "room", "spread"]


@dataclass(frozen=True)
class Share:
    """The VMs of the batch one host makes: their 1-based positions in the batch (what
    names them and numbers their customisation) and the host's rating when it took the
    first of them."""

    host: str
    positions: tuple[int, ...]
    names: tuple[str, ...]
    rating: Rating

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "count": len(self.positions),
                "positions": list(self.positions), "vms": list(self.names),
                "stars": self.rating.stars, "reasons": list(self.rating.reasons)}


@dataclass(frozen=True)
class Spread:
    """Where each VM of a batch goes: ``shares`` in the order of their first VM, and
    ``ratings``, every host rated for the batch's first VM (best first)."""

    shares: tuple[Share, ...]
    ratings: tuple[Rating, ...]

    def counts(self) -> dict[str, int]:
        """Host → how many VMs of the batch it makes."""
        return {s.host: len(s.positions) for s in self.shares}

    def host_of(self, name: str) -> str:
        """The host VM ``name`` of the batch is placed on."""
        return next(s.host for s in self.shares if name in s.names)


def spread(hosts: Sequence[HostFacts], needs: VMNeeds, names: Sequence[str]) -> Spread:
    """Place the VMs ``names`` (the batch, in order; each needs ``needs`` — its
    ``count`` is ignored: every VM is rated alone) on ``hosts`` one by one (module
    docstring). ``needs.anti_affinity`` is the group (usually ``names``).

    :raises AdmissionRefused: no host at all, or the hosts together have no room for every
        VM; nothing is placed.
    """
    one = replace(needs, count=1)
    if not hosts:
        raise AdmissionRefused("no candidate host to place the VMs on; nothing was changed")
    first = tuple(rate_all(hosts, one))
    if room(hosts, one) < len(names):
        raise AdmissionRefused(_why(hosts, one, len(names), first), vms=list(names),
                            ratings=[r.to_dict() for r in first])
    facts = {h.name: h for h in hosts}
    placed: dict[str, list[tuple[int, str]]] = {}
    taken: dict[str, Rating] = {}
    for position, name in enumerate(names, start=1):
        chosen = best(rate_all(list(facts.values()), one))
        if chosen is None:  # room() counted every VM in: cannot happen
            raise AssertionError(f"no host for {name} although the hosts have room")
        placed.setdefault(chosen.host, []).append((position, name))
        taken.setdefault(chosen.host, chosen)
        facts[chosen.host] = _with_vm(facts[chosen.host], one, name)
    shares = tuple(Share(host, tuple(p for p, _ in vms), tuple(n for _, n in vms),
                         taken[host]) for host, vms in placed.items())
    return Spread(shares, first)


def room(hosts: Sequence[HostFacts], one: VMNeeds) -> int:
    """How many VMs of ``one`` the hosts take together (each host: as many as its free
    memory and storage hold; none without the switches the VM needs)."""
    return sum(_fits(h, one) for h in hosts)


def _fits(host: HostFacts, one: VMNeeds) -> int:
    if not one.networks <= host.networks:
        return 0
    memory = host.memory_free_mb // one.memory_mb if one.memory_mb > 0 else 1 << 30
    disk = host.storage_free_bytes // one.disk_bytes if one.disk_bytes > 0 else 1 << 30
    return max(0, min(memory, disk))


def _with_vm(host: HostFacts, one: VMNeeds, name: str) -> HostFacts:
    """``host`` after it took one VM ``name``."""
    return replace(host, memory_free_mb=host.memory_free_mb - one.memory_mb,
                   storage_free_bytes=host.storage_free_bytes - one.disk_bytes,
                   vms=host.vms | {name})


def _why(hosts: Sequence[HostFacts], one: VMNeeds, count: int,
         ratings: Sequence[Rating]) -> str:
    """The refusal: the switches no host has, else the memory/storage sums."""
    usable = [h for h in hosts if one.networks <= h.networks]
    if not usable:
        return "no host can take these VMs: " + "; ".join(ratings[0].reasons)
    vms, need = (f"{count} VMs", "need") if count > 1 else ("the VM", "needs")
    where = "the hosts" if len(usable) == len(hosts) else \
        "the hosts with virtual switch " + ", ".join(sorted(one.networks))
    parts = []
    if one.memory_mb > 0 and sum(h.memory_free_mb // one.memory_mb for h in usable) < count:
        have = " + ".join(f"{h.memory_free_mb} MB ({h.name})" for h in usable)
        parts.append(f"{vms} of {one.memory_mb} MB {need} {count * one.memory_mb} MB of "
                     f"memory, {where} have {have} free")
    if one.disk_bytes > 0 and \
            sum(h.storage_free_bytes // one.disk_bytes for h in usable) < count:
        have = " + ".join(f"{h.storage_free_bytes // MB} MB ({h.name})" for h in usable)
        parts.append(f"{vms} of {one.disk_bytes // MB} MB of disk {need} "
                     f"{count * one.disk_bytes // MB} MB of storage, {where} have {have} "
                     "free")
    if not parts:  # each resource alone would do, not both on the same hosts
        parts.append(f"{vms} {'do' if count > 1 else 'does'} not fit the free memory and "
                     f"storage of {where} together")
    return (f"the hosts have no room for {vms}: {'; '.join(parts)} (room for "
            f"{room(usable, one)} of them); nothing was changed")
