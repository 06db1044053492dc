"""``cluster validate`` (Hyper-V's "Validate a Configuration"; docs/architecture.md,
"Failover cluster: validate"): each check turns measured facts into pass, warn or fail
with a one-line summary and the facts it judged. Pure: the service measures (real etcd
requests, each host's answer to a validate request) and this module judges.

Checks and their thresholds:

- ``etcd quorum``: fail without a majority of members answering; warn when one does not.
- ``etcd latency``: per member, the median of real requests; warn at or above the
  keepalive interval (1 s): a member that slow stalls lease renewals.
- ``etcd failure domains``: the members' sites (``--etcd-site``); warn when they are not
  spread over at least 3 (a lost site must not take the quorum with it).
- ``clock skew``: each host's wall clock against this host's, with the error bound of the
  measurement; warn beyond 1 s, fail beyond 30 s (after subtracting the bound); a host
  that did not answer fails.
- ``shared storage``: every host wrote, locked and read back a probe file in each shared
  folder, and this host sees every host's probe (the same storage, not the same path on
  different disks); fail naming the host and folder; warn when no shared folder is named.
- ``cpu compatibility``: QEMU versions, accelerators and CPU flags of the hosts; warn
  naming what differs (live migration may be refused between them).
- ``memory n+1``: the HA VMs wanted running still fit (by the placement rules) when the
  largest host is lost; warn naming what would be Pending.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from viridian.cluster.model import ClusterVM, HostRecord, HostState
from viridian.cluster.placement import place

__all__ = ["Check", "HostAnswer", "MemberProbe", "Status", "StorageProbe", "clock_skew",
           "cpu_compatibility",
           "etcd_domains", "etcd_latency", "etcd_quorum", "memory_n_plus_1", "report",
           "shared_storage"]

LATENCY_WARN_S = 1.0
SKEW_WARN_S = 1.0
SKEW_FAIL_S = 30.0
MIN_DOMAINS = 3


class Status(Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    summary: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary,
                "facts": dict(self.facts)}


@dataclass(frozen=True)
class MemberProbe:
    """An etcd member as measured: round trips of real requests (seconds), or the error."""

    endpoint: str
    site: str = ""
    round_trips: tuple[float, ...] = ()
    error: str = ""

    @property
    def healthy(self) -> bool:
        return bool(self.round_trips) and not self.error

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.round_trips) if self.round_trips else None


@dataclass(frozen=True)
class StorageProbe:
    folder: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class HostAnswer:
    """A host's answer to a validate request. ``offset_s``: its wall clock minus this
    host's at the moment it answered, ± ``bound_s`` (half the window in which the answer
    appeared, etcd round trips included)."""

    host: str
    offset_s: float = 0.0
    bound_s: float = 0.0
    qemu: str = ""
    accelerator: str = ""
    cpu_model: str = ""
    cpu_flags: frozenset[str] = frozenset()
    storage: tuple[StorageProbe, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], offset_s: float, bound_s: float) -> HostAnswer:
        return cls(str(d["host"]), offset_s, bound_s, str(d.get("qemu", "")),
                   str(d.get("accelerator", "")), str(d.get("cpu_model", "")),
                   frozenset(d.get("cpu_flags", ())),
                   tuple(StorageProbe(str(s["folder"]), bool(s["ok"]), str(s.get("error", "")))
                         for s in d.get("storage", ())))


def etcd_quorum(members: Sequence[MemberProbe]) -> Check:
    healthy = [m.endpoint for m in members if m.healthy]
    down = {m.endpoint: m.error or "no answer" for m in members if not m.healthy}
    facts = {"members": len(members), "healthy": len(healthy), "unreachable": down}
    summary = f"{len(healthy)}/{len(members)} members answer"
    if len(healthy) * 2 <= len(members):
        return Check("etcd quorum", Status.FAIL, summary + ": no quorum (a majority is "
                     f"{len(members) // 2 + 1})", facts)
    if down:
        return Check("etcd quorum", Status.WARN, summary + "; unreachable: "
                     + ", ".join(f"{url} ({why})" for url, why in down.items()), facts)
    return Check("etcd quorum", Status.PASS, summary, facts)


def etcd_latency(members: Sequence[MemberProbe]) -> Check:
    medians = {m.endpoint: round(m.median_s * 1000, 1) for m in members
               if m.median_s is not None}
    facts = {"median_ms": medians, "requests_per_member":
             max((len(m.round_trips) for m in members), default=0)}
    slow = [url for url, ms in medians.items() if ms >= LATENCY_WARN_S * 1000]
    shown = ", ".join(f"{url} {ms:g} ms" for url, ms in medians.items()) or "no member answered"
    if not medians:
        return Check("etcd latency", Status.FAIL, shown, facts)
    if slow:
        return Check("etcd latency", Status.WARN, f"{shown}; at or above the 1 s keepalive "
                     f"interval: {', '.join(slow)}", facts)
    return Check("etcd latency", Status.PASS, shown, facts)


def etcd_domains(members: Sequence[MemberProbe]) -> Check:
    sites = {m.endpoint: m.site for m in members}
    domains = sorted({s for s in sites.values() if s})
    unnamed = [url for url, s in sites.items() if not s]
    facts = {"sites": sites, "domains": domains}
    if unnamed:
        return Check("etcd failure domains", Status.WARN, "no site named for "
                     + ", ".join(unnamed) + " (cluster create/join --etcd-site URL=SITE)",
                     facts)
    if len(domains) < MIN_DOMAINS:
        return Check("etcd failure domains", Status.WARN, f"members in {len(domains)} "
                     f"site(s) ({', '.join(domains)}): a lost site can take the quorum "
                     f"with it; spread them over {MIN_DOMAINS}", facts)
    return Check("etcd failure domains", Status.PASS,
                 f"members in {len(domains)} sites: {', '.join(domains)}", facts)


def clock_skew(expected: Iterable[str], answers: Mapping[str, HostAnswer]) -> Check:
    facts = {h: {"offset_ms": round(a.offset_s * 1000, 1), "bound_ms": round(a.bound_s * 1000,
                                                                                 1)}
             for h, a in sorted(answers.items())}
    silent = sorted(set(expected) - set(answers))
    shown = ", ".join(f"{h} {a.offset_s * 1000:+.0f} ms (±{a.bound_s * 1000:.0f})"
                      for h, a in sorted(answers.items()))
    if silent:
        return Check("clock skew", Status.FAIL, f"no answer from {', '.join(silent)}; "
                     f"{shown}", facts)
    worst = {h: abs(a.offset_s) - a.bound_s for h, a in answers.items()}
    failing = [h for h, off in worst.items() if off > SKEW_FAIL_S]
    warning = [h for h, off in worst.items() if off > SKEW_WARN_S]
    if failing:
        return Check("clock skew", Status.FAIL, f"{shown}; beyond {SKEW_FAIL_S:g} s: "
                     f"{', '.join(sorted(failing))}", facts)
    if warning:
        return Check("clock skew", Status.WARN, f"{shown}; beyond {SKEW_WARN_S:g} s: "
                     f"{', '.join(sorted(warning))}", facts)
    return Check("clock skew", Status.PASS, shown, facts)


def shared_storage(shared: Sequence[str], expected: Iterable[str],
                   answers: Mapping[str, HostAnswer],
                   visible: Mapping[str, Mapping[str, bool]]) -> Check:
    """``visible``: host → folder → whether this host sees that host's probe file."""
    if not shared:
        return Check("shared storage", Status.WARN, "the cluster names no shared folder "
                     "(cluster create --shared DIR): HA VMs are not checked to be on "
                     "storage every host sees", {})
    problems: list[str] = []
    facts: dict[str, Any] = {}
    for host in sorted(set(expected) | set(answers)):
        answer = answers.get(host)
        if answer is None:
            problems.append(f"{host}: no answer")
            continue
        probes = {p.folder: p for p in answer.storage}
        row = {}
        for folder in shared:
            probe = probes.get(folder)
            seen = visible.get(host, {}).get(folder, False)
            row[folder] = {"written_and_locked": bool(probe and probe.ok), "seen_here": seen,
                           **({"error": probe.error} if probe and probe.error else {})}
            if probe is None or not probe.ok:
                problems.append(f"{host}: {folder}: "
                                f"{probe.error if probe else 'not probed'}")
            elif not seen:
                problems.append(f"{host}: {folder}: its probe file is not visible from this "
                                "host (not the same storage)")
        facts[host] = row
    if problems:
        return Check("shared storage", Status.FAIL, "; ".join(problems), facts)
    return Check("shared storage", Status.PASS, f"{', '.join(shared)}: written, locked and "
                 f"seen from every host ({len(facts)})", facts)


def cpu_compatibility(answers: Mapping[str, HostAnswer]) -> Check:
    facts = {h: {"qemu": a.qemu, "accelerator": a.accelerator, "cpu_model": a.cpu_model,
                 "cpu_flags": len(a.cpu_flags)} for h, a in sorted(answers.items())}
    if not answers:
        return Check("cpu compatibility", Status.FAIL, "no host answered", facts)
    differ: list[str] = []
    for what in ("qemu", "accelerator", "cpu_model"):
        values = {h: getattr(a, what) for h, a in answers.items()}
        if len(set(values.values())) > 1:
            differ.append(f"{what} differs: " + ", ".join(f"{h} {v or '?'}"
                                                          for h, v in sorted(values.items())))
    common = frozenset.intersection(*(a.cpu_flags for a in answers.values()))
    for host, answer in sorted(answers.items()):
        extra = sorted(answer.cpu_flags - common)
        if extra:
            differ.append(f"flags only some hosts have, on {host}: {' '.join(extra)}")
    if differ:
        return Check("cpu compatibility", Status.WARN, "; ".join(differ) + " (live migration "
                     "to a host without them may be refused)", facts)
    one = next(iter(answers.values()))
    return Check("cpu compatibility", Status.PASS, f"{len(answers)} hosts alike: QEMU "
                 f"{one.qemu}, {one.accelerator}, {one.cpu_model or '?'}, "
                 f"{len(one.cpu_flags)} CPU flags", facts)


def memory_n_plus_1(vms: Sequence[ClusterVM], hosts: Sequence[HostRecord]) -> Check:
    """Whether the HA VMs wanted running still fit when the largest Up host is lost."""
    up = [h for h in hosts if h.state is HostState.UP]
    wanted = [vm for vm in vms if vm.policy.restarts and vm.desired_running]
    facts: dict[str, Any] = {"hosts_up": len(up), "ha_vms": len(wanted),
                             "ha_memory_mb": sum(vm.memory_mb for vm in wanted)}
    if len(up) < 2:
        return Check("memory n+1", Status.WARN, f"{len(up)} host(s) Up: no host is left to "
                     "restart HA VMs on when one fails", facts)
    largest = max(up, key=lambda h: (h.memory_total_mb, h.name))
    facts["lost_host"] = largest.name
    orphaned = [replace(vm, owner=None, owner_lease=0) if vm.owner in (largest.name, None)
                else vm for vm in wanted]
    rest = [h for h in up if h is not largest]
    pending = place(orphaned, rest).pending
    names = {vm.id: vm.name for vm in wanted}
    facts["pending"] = sorted(names[i] for i in pending)
    if pending:
        return Check("memory n+1", Status.WARN, f"without {largest.name} (the largest host) "
                     f"these HA VMs would be Pending: {', '.join(facts['pending'])}", facts)
    return Check("memory n+1", Status.PASS, f"without {largest.name} (the largest host) "
                 f"every HA VM wanted running still fits ({len(wanted)} VMs, "
                 f"{facts['ha_memory_mb']} MB)", facts)


def report(checks: Sequence[Check]) -> dict[str, Any]:
    """The API object: overall status (the worst) and each check."""
    order = [Status.PASS, Status.WARN, Status.FAIL]
    worst = max((c.status for c in checks), key=order.index, default=Status.PASS)
    return {"status": worst.value, "checks": [c.to_dict() for c in checks]}
