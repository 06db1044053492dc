"""Best-practice rules for a virtualization host (the seed's planning chapters).

Every rule is a pure function ``Facts → Finding``. A finding's ``status`` is ``fired``
(the practice is broken), ``ok``, ``not_applicable`` (the feature it is about does not
exist on this host yet) or ``no_data`` (not enough counter history to judge).
Thresholds are named constants with the seed's values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from viridian.bpa.facts import Facts

RECOMMENDED_RESERVE_MB = 512
"""Memory the parent partition needs for itself (seed: 512 MB)."""
MAX_VP_PER_LP = 8
"""Supported ratio of virtual to logical processors (seed: 8:1)."""
DISK_TIME_LIMIT_PCT = 75.0
QUEUE_LENGTH_LIMIT = 2.0
HEAVY_CPU_PCT = 25.0
HEAVY_RSS_MB = 2048
BUSY_VM_IOPS = 20.0
BUSY_VMS_PER_DEVICE = 3
EXPANDING_TYPES = {"dynamic"}
OVERLAY_TYPES = {"differencing"}


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    severity: str  # "error" | "warning" | "info"
    status: str  # "fired" | "ok" | "not_applicable" | "no_data"
    measured: str
    why: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finding(rule: Rule, fired: bool, measured: str, status: str | None = None) -> Finding:
    return Finding(rule.id, rule.title, rule.severity,
                   status or ("fired" if fired else "ok"), measured, rule.why, rule.fix)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    why: str
    fix: str
    check: Callable[[Rule, Facts], Finding]

    def __call__(self, facts: Facts) -> Finding:
        return self.check(self, facts)


def host_reserve(rule: Rule, f: Facts) -> Finding:
    h = f.host
    fired = h.host_reserve_mb < RECOMMENDED_RESERVE_MB or h.memory_available_mb < (
        RECOMMENDED_RESERVE_MB)
    return _finding(rule, fired, f"configured reserve {h.host_reserve_mb} MB, available "
                    f"{h.memory_available_mb} MB (recommended ≥ {RECOMMENDED_RESERVE_MB} MB)")


def vp_ratio(rule: Rule, f: Facts) -> Finding:
    h = f.host
    running = sum(vm.processors for vm in f.vms if vm.running)
    ratio = running / max(1, h.logical_processors)
    fired = ratio > MAX_VP_PER_LP or h.virtual_processor_ratio > MAX_VP_PER_LP
    return _finding(rule, fired, f"{running} running VPs on {h.logical_processors} LPs = "
                    f"{ratio:.2f}:1; admission limit {h.virtual_processor_ratio}:1 "
                    f"(supported ≤ {MAX_VP_PER_LP}:1)")


def _per_device(values: dict[str, float], limit: float, unit: str, f: Facts,
                rule: Rule) -> Finding:
    if f.counters.samples == 0 or not values:
        return _finding(rule, False, "no counter history yet", "no_data")
    worst = max(values, key=lambda d: values[d])
    over = sorted(d for d, v in values.items() if v > limit)
    text = f"highest: {worst} {values[worst]:.1f}{unit} over {f.counters.window_s:.0f} s"
    return _finding(rule, bool(over), text + (f"; above limit: {', '.join(over)}" if over
                                              else ""))


def disk_time(rule: Rule, f: Facts) -> Finding:
    return _per_device(f.counters.disk_time_pct, DISK_TIME_LIMIT_PCT, " %", f, rule)


def queue_length(rule: Rule, f: Facts) -> Finding:
    return _per_device(f.counters.queue_length, QUEUE_LENGTH_LIMIT, "", f, rule)


def hardware_virtualization(rule: Rule, f: Facts) -> Finding:
    return _finding(rule, f.host.accelerator != "kvm",
                    f"accelerator {f.host.accelerator}")


def heavy_processes(rule: Rule, f: Facts) -> Finding:
    heavy = [p for p in f.host.processes
             if p.cpu_pct >= HEAVY_CPU_PCT or p.rss_mb >= HEAVY_RSS_MB]
    heavy.sort(key=lambda p: (-p.cpu_pct, -p.rss_mb))
    text = ", ".join(f"{p.name}[{p.pid}] {p.cpu_pct:.0f}% CPU {p.rss_mb} MB" for p in heavy[:5])
    return _finding(rule, bool(heavy), text or
                    f"no other process above {HEAVY_CPU_PCT:.0f}% CPU or {HEAVY_RSS_MB} MB")


def _disks_of_type(f: Facts, types: set[str]) -> list[str]:
    return [f"{vm.name}: {d.path} ({d.format} {d.disk_type})"
            for vm in f.vms if vm.production for d in vm.disks if d.disk_type in types]


def overlays(rule: Rule, f: Facts) -> Finding:
    found = [f"{vm.name}: {vm.checkpoints} checkpoint{'s' if vm.checkpoints > 1 else ''}"
             for vm in f.vms if vm.production and vm.checkpoints]
    found += _disks_of_type(f, OVERLAY_TYPES)
    return _finding(rule, bool(found), "; ".join(found) or
                    "no differencing disks or overlays on production VMs")


def dynamic_disks(rule: Rule, f: Facts) -> Finding:
    found = _disks_of_type(f, EXPANDING_TYPES)
    return _finding(rule, bool(found), "; ".join(found) or
                    "no dynamically expanding disks on production VMs")


def management_adapter(rule: Rule, f: Facts) -> Finding:
    if not f.host.virtual_switches_supported:
        return _finding(rule, False, "virtual switches are not available on this host "
                        "(no CAP_NET_ADMIN): VMs use user-mode NAT and cannot share the "
                        "management adapter", "not_applicable")
    shared = dict(f.host.management_switches)
    found = [f"VM {vm.name} on switch '{s}' (bound to management adapter {shared[s]})"
             for vm in f.vms for s in dict.fromkeys(vm.switches) if s in shared]
    return _finding(rule, bool(found), "; ".join(found) or
                    "no VM is connected to a switch bound to the management adapter")


def failover_memory(rule: Rule, f: Facts) -> Finding:
    running = [vm for vm in f.vms if vm.running]
    if not running:
        return _finding(rule, False, "no VM runs", "not_applicable")
    largest = max(running, key=lambda vm: vm.memory_mb)
    spare = f.host.memory_available_mb - f.host.host_reserve_mb
    return _finding(rule, spare < largest.memory_mb,
                    f"spare {spare} MB (available {f.host.memory_available_mb} - reserve "
                    f"{f.host.host_reserve_mb}); largest running VM {largest.name} "
                    f"{largest.memory_mb} MB")


def busy_vms_one_device(rule: Rule, f: Facts) -> Finding:
    if f.counters.samples == 0:
        return _finding(rule, False, "no counter history yet", "no_data")
    by_device: dict[str, set[str]] = defaultdict(set)
    for vm in f.vms:
        if vm.disk_iops is not None and vm.disk_iops >= BUSY_VM_IOPS:
            for d in vm.disks:
                if d.host_device:
                    by_device[d.host_device].add(vm.name)
    crowded = {dev: sorted(names) for dev, names in by_device.items()
               if len(names) >= BUSY_VMS_PER_DEVICE}
    text = "; ".join(f"{dev}: {', '.join(n)}" for dev, n in sorted(crowded.items()))
    return _finding(rule, bool(crowded), text or
                    f"no device holds disks of {BUSY_VMS_PER_DEVICE}+ VMs doing ≥ "
                    f"{BUSY_VM_IOPS:.0f} IOPS")


RULES: tuple[Rule, ...] = (
    Rule("host-memory-reserve", "Keep memory in reserve for the host", "error",
         "The management OS needs about 512 MB for itself; with less, the host pages and "
         "every VM slows down, or VMs cannot start.",
         "Set host_reserve_mb to at least 512 in <data>/host.json and keep that much free.",
         host_reserve),
    Rule("vp-lp-ratio", "Virtual processors per logical processor ≤ 8:1", "warning",
         "Beyond 8 virtual processors per logical processor the scheduler time-slices so "
         "much that guests see long run-queue delays.",
         "Move VMs to another host, lower their processor counts, or set "
         "virtual_processor_ratio to 8 or less in host.json.", vp_ratio),
    Rule("disk-time", "Sustained disk time below 75 %", "warning",
         "A disk busy more than 75 % of the time is a bottleneck: guests wait for I/O.",
         "Spread VM disks over more spindles or faster drives (more disks in the RAID set, "
         "SSD), or move busy VMs away.", disk_time),
    Rule("disk-queue-length", "Average disk queue length at most 2", "warning",
         "More than two requests waiting per disk means requests queue faster than the "
         "drive serves them.",
         "Add drives or faster drives; separate the disks of busy VMs.", queue_length),
    Rule("hardware-virtualization", "Hardware-assisted virtualization in use", "error",
         "Without Intel VT-x/AMD-V (KVM), QEMU translates every guest instruction (TCG): "
         "guests run many times slower.",
         "Enable virtualization in the firmware, load kvm_intel/kvm_amd, make /dev/kvm "
         "usable, and set accelerator to auto or kvm in host.json.",
         hardware_virtualization),
    Rule("heavy-host-processes", "No other heavy workloads on the host", "warning",
         "Roles and applications in the management OS take CPU and memory from the VMs and "
         "widen the attack surface.",
         "Run other workloads in VMs or on other hosts; keep the host dedicated.",
         heavy_processes),
    Rule("checkpoints-on-production", "No checkpoints or differencing disks on production "
         "VMs", "warning",
         "Every write to a differencing disk or overlay walks the chain; chains grow and "
         "slow I/O, and losing a parent loses the VM.",
         "Merge the chain (viridian disk merge) or delete the checkpoints; tag lab VMs "
         "with 'bpa:test' in their notes.", overlays),
    Rule("dynamic-disks-on-production", "Fixed-size disks on production VMs", "warning",
         "Dynamically expanding disks fragment and grow at write time, costing I/O and "
         "risking a full volume.",
         "Convert to fixed (viridian disk convert --type fixed); tag lab VMs with "
         "'bpa:test' in their notes.", dynamic_disks),
    Rule("vm-on-management-adapter", "VMs not on the management adapter", "warning",
         "Sharing the management NIC with VM traffic lets guests saturate or reach the "
         "host's management network.",
         "Bind external virtual switches to a dedicated NIC.", management_adapter),
    Rule("failover-spare-memory", "Spare memory to restart the largest VM", "warning",
         "After a failure (or to restart a VM elsewhere) the host needs free memory for "
         "the largest VM, beyond its own reserve.",
         "Free memory (stop or shrink VMs) or add memory so that available - reserve ≥ "
         "the largest VM.", failover_memory),
    Rule("busy-vms-one-device", "Disks of busy VMs spread over devices", "warning",
         "Several I/O-heavy VMs on one device compete for the same spindles.",
         "Move the disks of busy VMs to separate devices.", busy_vms_one_device),
)


def analyze(facts: Facts) -> list[Finding]:
    """Every rule's finding, in :data:`RULES` order."""
    return [rule(facts) for rule in RULES]
