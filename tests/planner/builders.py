"""Small YAML inputs for the planner tests, built from keyword overrides."""

from __future__ import annotations

from typing import Any

import yaml

from viridian.planner import PlanResult, load_plan, plan


def workload(name: str = "vm", **overrides: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "memory": "1 GB",
        "processors": 1,
        "cpu_percent": 0,
        "iops": 0,
        "read_percent": 100,
        "disk": 0,
    }
    return {**base, **overrides}


def host(
    name: str = "host", storage: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    base_storage = {"drive": "ssd", "drive_size": "1 TB", "raid": 1, "bays": 8}
    base = {
        "name": name,
        "sockets": 1,
        "cores_per_socket": 4,
        "memory": "64 GB",
        "cost": 1000,
        "storage": {**base_storage, **(storage or {})},
    }
    return {**base, **overrides}


def document(workloads: list[dict[str, Any]], hosts: list[dict[str, Any]], **settings: Any) -> str:
    doc: dict[str, Any] = {"workloads": workloads, "hosts": hosts}
    if settings:
        doc["settings"] = settings
    return yaml.safe_dump(doc, sort_keys=False)


def run_plan(
    workloads: list[dict[str, Any]], hosts: list[dict[str, Any]], **settings: Any
) -> PlanResult:
    return plan(load_plan(document(workloads, hosts, **settings)))
