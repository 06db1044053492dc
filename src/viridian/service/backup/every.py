"""``backup new --all --to TARGET``: one point of every VM on the host, Running or not
(docs/api.md, "Backup"). A parent job (kind ``backup-all``) queues each VM's backup job
in turn (on that VM's queue, one at a time so the host's disks and CPUs serve one copy)
and waits for it; a VM whose backup fails does not stop the others. The parent's result
lists each VM's point or its error and names the failed VMs. With memory asked
(``new_all(with_memory=True)``), a VM whose memory could not be included (Off, or between
states) is backed up without it: its outcome's ``memory_skipped`` says why, and the
result's ``without_memory`` names those VMs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from viridian.errors import as_viridian
from viridian.service.jobs import Job, JobRunner

FINISHED = ("completed", "failed", "cancelled")
NewPoint = Callable[[str], dict[str, Any]]
"""Queue the backup job of the VM with this id; its job object (with
``memory_skipped``: the reason its memory is not included, or None, when memory was
asked)."""


async def back_up_all(vms: list[tuple[str, str]], new_point: NewPoint, jobs: JobRunner,
                      job: Job) -> dict[str, Any]:
    """Back up each of ``vms`` (id, name) in order; every VM's outcome."""
    outcomes: list[dict[str, Any]] = []
    for index, (vm_id, name) in enumerate(vms):
        job.report(100 * index / max(1, len(vms)), f"backing up {name}")
        outcomes.append(await _one(vm_id, name, new_point, jobs))
    failed = [o["vm"] for o in outcomes if o["error"] is not None]
    job.report(100, f"{len(vms) - len(failed)} of {len(vms)} VM(s) backed up"
               + (f"; failed: {', '.join(failed)}" if failed else ""))
    result: dict[str, Any] = {"points": outcomes, "failed": failed}
    if any("memory_skipped" in o for o in outcomes):
        result["without_memory"] = [o["vm"] for o in outcomes if o.get("memory_skipped")]
    return result


async def _one(vm_id: str, name: str, new_point: NewPoint,
               jobs: JobRunner) -> dict[str, Any]:
    outcome: dict[str, Any] = {"vm": name, "vm_id": vm_id, "job": None, "backup": None,
                               "error": None}
    try:
        child = new_point(vm_id)
    except Exception as err:  # e.g. the VM was removed meanwhile
        outcome["error"] = as_viridian(err).to_dict()
        return outcome
    outcome["job"] = child["id"]
    if "memory_skipped" in child:
        outcome["memory_skipped"] = child["memory_skipped"]
    done = jobs.get(child["id"])
    while done["state"] not in FINISHED:
        done = await jobs.wait(child["id"], 3600)
    if done["state"] == "completed":
        outcome["backup"] = done["result"]
    else:
        outcome["error"] = done["error"] or {"code": "cancelled",
                                             "message": f"the backup job was {done['state']}"}
    return outcome
