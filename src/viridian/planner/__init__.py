"""Capacity planner: how many hosts of which shape a set of workloads needs.

Pure core (no I/O): :func:`load_plan` reads the YAML input (``docs/planner-example.yaml``
documents every key), :func:`plan` sizes every candidate host shape with N+1 failover
and recommends the cheapest that fits, :func:`format_plan` renders the terminal tables,
:func:`plan_to_dict` the JSON, and :func:`render_report` a self-contained HTML report
with inline SVG charts. The sizing rules are stated in :mod:`viridian.planner.sizing`
and the drive/RAID figures in :mod:`viridian.planner.storage`.

Errors: :class:`viridian.errors.BadRequest` (YAML syntax, missing or unknown keys) and
:class:`viridian.errors.InvalidSetting` (a bad value: its path, the value, the allowed
values).
"""

from viridian.planner.parse import load_plan
from viridian.planner.report import render_report
from viridian.planner.serialize import plan_to_dict
from viridian.planner.sizing import CandidatePlan, Cost, HostUsage, PlanResult, plan
from viridian.planner.spec import HostShape, PlanInput, Settings, Storage, Workload
from viridian.planner.storage import DEFAULT_DRIVE_IOPS, RAID_LEVELS, drives_needed, functional_iops
from viridian.planner.text import format_plan

__all__ = [
    "DEFAULT_DRIVE_IOPS",
    "RAID_LEVELS",
    "CandidatePlan",
    "Cost",
    "HostShape",
    "HostUsage",
    "PlanInput",
    "PlanResult",
    "Settings",
    "Storage",
    "Workload",
    "drives_needed",
    "format_plan",
    "functional_iops",
    "load_plan",
    "plan",
    "plan_to_dict",
    "render_report",
]
