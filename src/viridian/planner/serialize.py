"""The plan as JSON-ready data (``viridian plan --json``): every input figure and result."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from viridian.planner.sizing import CandidatePlan, HostUsage, PlanResult

__all__ = ["plan_to_dict"]


def plan_to_dict(result: PlanResult) -> dict[str, Any]:
    """Plain dicts, lists, numbers and strings; sizes in MB (memory) and GB (disk)."""
    request = result.request
    return {
        "settings": asdict(request.settings),
        "workloads": [asdict(workload) for workload in request.workloads],
        "candidates": [_candidate(candidate) for candidate in result.candidates],
        "recommended": result.recommended,
    }


def _candidate(candidate: CandidatePlan) -> dict[str, Any]:
    return {
        "name": candidate.shape.name,
        "shape": {
            **asdict(candidate.shape),
            "logical_processors": candidate.shape.logical_processors,
        },
        "fits": candidate.fits,
        "hosts": candidate.hosts,
        "failover_spares": candidate.spares,
        "drives_per_host": candidate.drives_per_host,
        "drive_iops": candidate.drive_iops,
        "drive_need": asdict(candidate.drive_need),
        "cost": {**asdict(candidate.cost), "total": candidate.cost.total},
        "limited_by": candidate.limited_by,
        "problems": list(candidate.problems),
        "notes": list(candidate.notes),
        "failover_state": [_usage(usage) for usage in candidate.failover],
        "normal_state": [_usage(usage) for usage in candidate.normal],
    }


def _usage(usage: HostUsage) -> dict[str, Any]:
    return {
        **asdict(usage),
        "vms": list(usage.vms),
        "memory_used_mb": usage.memory_used_mb,
        "memory_percent": round(usage.memory_percent, 2),
        "vp_ratio": round(usage.vp_ratio, 3),
        "iops_percent": round(usage.iops_percent, 2),
        "capacity_percent": round(usage.capacity_percent, 2),
    }
