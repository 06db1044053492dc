"""The plan as a self-contained HTML report: inline CSS and SVG, no scripts, no links.

Sections: the recommendation, the workloads, a cost comparison, drives vs IOPS per
candidate, and for each candidate its host table and a per-host utilisation chart
(CPU, memory, drive IOPS and disk, with one host down).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from viridian.planner.sizing import CandidatePlan, HostUsage, PlanResult
from viridian.planner.svg import Bar, Group, RefLine, Segment, bar_chart
from viridian.planner.text import format_money, recommendation_line, shape_summary
from viridian.planner.units import format_gb, format_mb

__all__ = ["render_report"]

COLORS = {
    "CPU": "#2563eb",
    "Memory": "#059669",
    "Drive IOPS": "#d97706",
    "Disk": "#7c3aed",
    "Hosts": "#2563eb",
    "Drives": "#d97706",
    "Functional IOPS": "#dc2626",
    "IOPS the drives deliver": "#059669",
    "Drives for IOPS": "#d97706",
    "Drives for capacity": "#7c3aed",
    "Drives per host": "#374151",
}

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #111827; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.rec { background: #ecfdf5; border: 1px solid #10b981; padding: 10px 14px; font-weight: bold; }
.none { background: #fef2f2; border-color: #ef4444; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d1d5db; padding: 3px 8px; text-align: right; }
th { background: #f3f4f6; } td:first-child, th:first-child, .l { text-align: left; }
.bad { color: #b91c1c; font-weight: bold; } .ok { color: #047857; font-weight: bold; }
ul.problems li { color: #b91c1c; } ul.notes li { color: #92400e; }
svg { display: block; margin: 6px 0 14px; border: 1px solid #e5e7eb; }
svg .ct { font: bold 15px sans-serif; } svg .gl { font: bold 12px sans-serif; }
svg .bl { font: 12px sans-serif; text-anchor: end; } svg .bv { font: 12px sans-serif; }
svg .lg { font: 12px sans-serif; } svg .mk { font: 11px sans-serif; }
svg .rl { font: 11px sans-serif; text-anchor: middle; }
.muted { color: #6b7280; font-size: 13px; }
"""


def render_report(result: PlanResult) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    body = [
        "<h1>viridian capacity plan</h1>",
        f'<p class="muted">{escape(_rules(result))}</p>',
        _recommendation(result),
        "<h2>Workloads</h2>",
        _workload_table(result),
        "<h2>Comparison</h2>",
        _comparison_table(result),
        bar_chart("Cost per candidate", [_cost_group(c, result) for c in result.candidates]),
        bar_chart(
            "Drives vs IOPS: busiest host (one host down)",
            [_iops_group(c) for c in result.candidates if c.hosts],
        ),
        bar_chart(
            "Drives per host: needed for IOPS and for capacity, vs the bays",
            [_drives_group(c) for c in result.candidates if c.hosts],
        ),
        *(_candidate_section(c, result) for c in result.candidates),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>viridian capacity plan</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _rules(result: PlanResult) -> str:
    settings = result.request.settings
    return (
        f"N+{settings.failover_spares} failover: every host is sized for the load it carries "
        f"with {settings.failover_spares} host(s) down. Host reserve "
        f"{settings.host_reserve_mb:.0f} MB; VM overhead {settings.vm_overhead_first_gb_mb:g} MB "
        f"+ {settings.vm_overhead_per_gb_mb:g} MB per further GB; VP:LP at most "
        f"{settings.max_vp_per_lp:g}:1; CPU at most {settings.max_cpu_percent:g} %; disk and "
        f"IOPS grown over {settings.horizon_years:g} years; functional IOPS = reads + writes x "
        "RAID write penalty (RAID 0/1/5/6/10: 1/2/4/6/2)."
    )


def _recommendation(result: PlanResult) -> str:
    css = "rec" if result.recommended else "rec none"
    return f'<p class="{css}">{escape(recommendation_line(result))}</p>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _workload_table(result: PlanResult) -> str:
    headers = (
        "Workload",
        "Count",
        "Memory",
        "VPs",
        "CPU % per VP",
        "IOPS",
        "Read %",
        "Disk",
        "Growth %/yr",
    )
    rows = [
        (
            escape(w.name),
            str(w.count),
            format_mb(w.memory_mb),
            str(w.processors),
            f"{w.cpu_percent:g}",
            f"{w.iops:,.0f}",
            f"{w.read_percent:g}",
            format_gb(w.disk_gb),
            f"{w.growth_percent:g}",
        )
        for w in result.request.workloads
    ]
    return _table(headers, rows)


def _comparison_table(result: PlanResult) -> str:
    headers = ("Candidate", "Fits", "Hosts", "Drives/host", "Limited by", "Cost")
    currency = result.request.settings.currency
    rows = [
        (
            escape(c.shape.name),
            _verdict(c, result),
            str(c.hosts or "-"),
            str(c.drives_per_host or "-"),
            escape(c.limited_by),
            format_money(c.cost.total, currency) if c.hosts else "-",
        )
        for c in result.candidates
    ]
    return _table(headers, rows)


def _verdict(candidate: CandidatePlan, result: PlanResult) -> str:
    if not candidate.fits:
        return '<span class="bad">no</span>'
    star = " (recommended)" if candidate.shape.name == result.recommended else ""
    return f'<span class="ok">yes{star}</span>'


def _cost_group(candidate: CandidatePlan, result: PlanResult) -> Group:
    currency = result.request.settings.currency
    cost = candidate.cost
    if not candidate.hosts:
        text = "does not fit"
    else:
        text = format_money(cost.total, currency) + ("" if candidate.fits else " (does not fit)")
    if candidate.shape.name == result.recommended:
        text += "  recommended"
    segments = (
        Segment("Hosts", cost.hosts, COLORS["Hosts"]),
        Segment("Drives", cost.drives, COLORS["Drives"]),
    )
    label = f"{candidate.hosts} hosts" if candidate.hosts else "-"
    bar = Bar(label, segments, text, faded=not candidate.fits)
    return Group(candidate.shape.name, (bar,))


def _busiest(candidate: CandidatePlan) -> HostUsage:
    return max(candidate.failover, key=lambda usage: usage.functional_iops)


def _iops_group(candidate: CandidatePlan) -> Group:
    busiest = _busiest(candidate)
    need = f"{busiest.functional_iops:,.0f} ({busiest.guest_iops:,.0f} guest IOPS)"
    deliver = f"{busiest.iops_capacity:,.0f} ({busiest.drives} x {candidate.drive_iops:g})"
    if busiest.functional_iops > busiest.iops_capacity + 1e-9:
        deliver += f": {candidate.drives_per_host - busiest.drives} more drives needed"
    bars = (
        Bar("functional IOPS", (_seg("Functional IOPS", busiest.functional_iops),), need),
        Bar(
            "drives deliver",
            (_seg("IOPS the drives deliver", busiest.iops_capacity),),
            deliver,
            faded=not candidate.fits,
        ),
    )
    return Group(candidate.shape.name, bars)


def _drives_group(candidate: CandidatePlan) -> Group:
    need = candidate.drive_need
    bays = candidate.shape.storage.bays
    bars = (
        Bar("for IOPS", (_seg("Drives for IOPS", need.for_iops),), str(need.for_iops)),
        Bar(
            "for capacity",
            (_seg("Drives for capacity", need.for_capacity),),
            str(need.for_capacity),
        ),
        Bar(
            "per host",
            (_seg("Drives per host", candidate.drives_per_host),),
            str(candidate.drives_per_host),
            faded=not candidate.fits,
        ),
    )
    return Group(candidate.shape.name, bars, marker=(bays, f"{bays} bays"))


def _seg(series: str, value: float) -> Segment:
    return Segment(series, value, COLORS[series])


def _candidate_section(candidate: CandidatePlan, result: PlanResult) -> str:
    parts = [
        f"<h2>{escape(candidate.shape.name)}: {_verdict(candidate, result)}</h2>",
        f'<p class="muted">{escape(shape_summary(candidate))}</p>',
    ]
    parts += [_list("problems", candidate.problems), _list("notes", candidate.notes)]
    if candidate.hosts:
        parts += _sized_parts(candidate, result)
    return "\n".join(parts)


def _sized_parts(candidate: CandidatePlan, result: PlanResult) -> list[str]:
    settings = result.request.settings
    need = candidate.drive_need
    return [
        f"<p>{candidate.hosts} hosts ({candidate.hosts - candidate.spares} for the VMs + "
        f"{candidate.spares} failover spare); {candidate.drives_per_host} drives per host "
        f"({need.for_iops} for the IOPS, {need.for_capacity} for the capacity); limited by "
        f"{escape(candidate.limited_by)}; cost "
        f"{escape(format_money(candidate.cost.total, settings.currency))}.</p>",
        f"<h3>With {candidate.spares} host(s) down</h3>",
        _host_table(candidate.failover),
        bar_chart(
            f"{candidate.shape.name}: utilisation per host (one host down)",
            [_utilisation_group(i, usage) for i, usage in enumerate(candidate.failover)],
            [
                RefLine(100, "100 %"),
                RefLine(
                    settings.max_cpu_percent,
                    f"CPU ceiling {settings.max_cpu_percent:g} %",
                    "#2563eb",
                ),
            ],
            minimum=100,
            cap=200,
        ),
        f"<h3>All {candidate.hosts} hosts up</h3>",
        _host_table(candidate.normal),
    ]


def _host_table(hosts: Sequence[HostUsage]) -> str:
    headers = (
        "Host",
        "VMs",
        "Memory used",
        "Mem %",
        "VP:LP",
        "CPU %",
        "IOPS guest",
        "IOPS functional",
        "Drive IOPS %",
        "Disk used / usable",
    )
    rows = [
        (
            f"host {i + 1}",
            str(len(u.vms)),
            f"{format_mb(u.memory_used_mb)} / {format_mb(u.memory_total_mb)}",
            _pct(u.memory_percent),
            f"{u.vp_ratio:.2f}:1",
            _pct(u.cpu_percent),
            f"{u.guest_iops:,.0f}",
            f"{u.functional_iops:,.0f}",
            _pct(u.iops_percent),
            f"{format_gb(u.capacity_gb)} / {format_gb(u.usable_gb)}",
        )
        for i, u in enumerate(hosts)
    ]
    return _table(headers, rows)


def _pct(value: float) -> str:
    text = f"{value:.0f} %"
    return f'<span class="bad">{text}</span>' if value > 100 + 1e-9 else text


def _utilisation_group(index: int, usage: HostUsage) -> Group:
    figures = (
        ("CPU", usage.cpu_percent),
        ("Memory", usage.memory_percent),
        ("Drive IOPS", usage.iops_percent),
        ("Disk", usage.capacity_percent),
    )
    bars = tuple(Bar(name, (_seg(name, value),), f"{value:.0f} %") for name, value in figures)
    return Group(f"host {index + 1} ({len(usage.vms)} VMs)", bars)


def _list(kind: str, items: Sequence[str]) -> str:
    if not items:
        return ""
    entries = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f'<ul class="{kind}">{entries}</ul>'
