"""The plan as the terminal shows it: one block and table per candidate, then the
recommendation. Pure: result in, text out."""

from __future__ import annotations

from collections.abc import Sequence

from viridian.planner.sizing import CandidatePlan, HostUsage, PlanResult
from viridian.planner.units import format_gb, format_mb

__all__ = ["format_money", "format_plan", "format_table", "shape_summary"]

HOST_HEADERS = (
    "Host",
    "VMs",
    "Memory used",
    "Mem %",
    "VP:LP",
    "CPU %",
    "IOPS guest",
    "IOPS func",
    "Drive IOPS %",
    "Disk used",
)


def format_plan(result: PlanResult) -> str:
    """Every candidate's block, then the recommendation line."""
    blocks = [_workload_summary(result), *(_candidate_block(c, result) for c in result.candidates)]
    return "\n\n".join([*blocks, recommendation_line(result)])


def recommendation_line(result: PlanResult) -> str:
    if result.recommended is None:
        return "Recommendation: none of the candidates fits; see the problems above."
    best = next(c for c in result.candidates if c.shape.name == result.recommended)
    money = format_money(best.cost.total, result.request.settings.currency)
    return (
        f"Recommendation: {best.shape.name}: {best.hosts} hosts "
        f"({best.hosts - best.spares} + {best.spares} spare), cost {money} "
        f"(the cheapest candidate that fits)"
    )


def format_money(amount: float, currency: str) -> str:
    return f"{currency}{' ' if len(currency) > 1 else ''}{amount:,.0f}"


def _workload_summary(result: PlanResult) -> str:
    request = result.request
    workloads = request.workloads
    memory = sum(w.memory_mb * w.count for w in workloads)
    vps = sum(w.processors * w.count for w in workloads)
    iops = sum(w.iops * w.count for w in workloads)
    disk = sum(w.disk_gb * w.count for w in workloads)
    settings = request.settings
    return (
        f"Workloads: {result.vms} VMs ({len(workloads)} workloads), {format_mb(memory)} memory, "
        f"{vps} virtual processors, {iops:,.0f} IOPS, {format_gb(disk)} disk (today; disk and "
        f"IOPS grow over {settings.horizon_years:g} years)\n"
        f"Rules: N+{settings.failover_spares} failover, host reserve "
        f"{settings.host_reserve_mb:.0f} MB, VM overhead {settings.vm_overhead_first_gb_mb:g} MB "
        f"+ {settings.vm_overhead_per_gb_mb:g} MB/GB, VP:LP <= {settings.max_vp_per_lp:g}:1, "
        f"CPU <= {settings.max_cpu_percent:g} %"
    )


def shape_summary(candidate: CandidatePlan) -> str:
    shape = candidate.shape
    storage = shape.storage
    threads = f" x {shape.threads_per_core} threads" if shape.threads_per_core > 1 else ""
    ghz = f" @ {shape.ghz:g} GHz" if shape.ghz else ""
    installed = f", {storage.installed} installed" if storage.installed is not None else ""
    sockets = f"{shape.sockets} socket{'s' if shape.sockets > 1 else ''}"
    return (
        f"{sockets} x {shape.cores_per_socket} cores{threads} = "
        f"{shape.logical_processors} LPs{ghz}, {format_mb(shape.memory_mb)} memory, "
        f"{storage.drive} drives of {format_gb(storage.drive_size_gb)} "
        f"({candidate.drive_iops:g} IOPS each) in RAID {storage.raid_level}, "
        f"{storage.bays} bays{installed}"
    )


def _candidate_block(candidate: CandidatePlan, result: PlanResult) -> str:
    lines = [_headline(candidate, result), f"  shape: {shape_summary(candidate)}"]
    if candidate.hosts:
        lines += _sized_lines(candidate, result.request.settings.currency)
    lines += [f"  ! {problem}" for problem in candidate.problems]
    lines += [f"  note: {note}" for note in candidate.notes]
    return "\n".join(lines)


def _headline(candidate: CandidatePlan, result: PlanResult) -> str:
    verdict = "fits" if candidate.fits else "DOES NOT FIT"
    if candidate.shape.name == result.recommended:
        verdict += " (recommended)"
    if not candidate.hosts:
        return f"{candidate.shape.name}: {verdict}"
    carrying = candidate.hosts - candidate.spares
    return (
        f"{candidate.shape.name}: {verdict}: {candidate.hosts} hosts ({carrying} for the VMs "
        f"+ {candidate.spares} failover spare), limited by {candidate.limited_by}"
    )


def _sized_lines(candidate: CandidatePlan, currency: str) -> list[str]:
    need = candidate.drive_need
    storage = candidate.shape.storage
    cost = candidate.cost
    return [
        f"  drives per host: {candidate.drives_per_host} ({need.for_iops} for the IOPS, "
        f"{need.for_capacity} for the capacity; {storage.bays} bays{_installed(candidate)})",
        f"  cost: {candidate.hosts} x ({format_money(candidate.shape.cost, currency)} + "
        f"{candidate.drives_per_host} x {format_money(storage.drive_cost, currency)}) = "
        f"{format_money(cost.total, currency)}",
        f"  with {candidate.spares} host(s) down:",
        _indent(
            format_table(HOST_HEADERS, [_host_row(i, u) for i, u in enumerate(candidate.failover)])
        ),
        f"  all {candidate.hosts} hosts up: {_normal_summary(candidate.normal)}",
    ]


def _installed(candidate: CandidatePlan) -> str:
    installed = candidate.shape.storage.installed
    return f", {installed} installed" if installed is not None else ""


def _host_row(index: int, usage: HostUsage) -> tuple[str, ...]:
    return (
        str(index + 1),
        str(len(usage.vms)),
        f"{format_mb(usage.memory_used_mb)} / {format_mb(usage.memory_total_mb)}",
        f"{usage.memory_percent:.0f} %",
        f"{usage.vp_ratio:.2f}:1",
        f"{usage.cpu_percent:.0f} %",
        f"{usage.guest_iops:,.0f}",
        f"{usage.functional_iops:,.0f}",
        f"{usage.iops_percent:.0f} %",
        f"{format_gb(usage.capacity_gb)} / {format_gb(usage.usable_gb)}",
    )


def _normal_summary(hosts: Sequence[HostUsage]) -> str:
    if not hosts:
        return "-"
    return (
        f"busiest host CPU {max(h.cpu_percent for h in hosts):.0f} %, memory "
        f"{max(h.memory_percent for h in hosts):.0f} %, drive IOPS "
        f"{max(h.iops_percent for h in hosts):.0f} %"
    )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by two spaces; the first column left-aligned, the others right."""
    cells = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )
