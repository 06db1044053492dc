"""The point in time of a live backup, in the process that holds a VM's images (QEMU, or
the VM's storage daemon: :meth:`Worker.block_monitor`) — docs/architecture.md, "Backup".

One ``transaction`` starts, for every disk at once, a ``blockdev-backup`` job (``full``,
or ``incremental`` from the dirty bitmap of the previous point with ``bitmap-mode:
never``, so that bitmap stays whole until the new point is good; ``sync: bitmap``, as
``incremental`` allows only ``on-success``) into a *local* qcow2
staging image, and adds a new dirty bitmap per disk named after the new point. The job's
copy-before-write filter copies old data to the local image before the guest overwrites
it, so guest writes wait at most for the local disk; the slow copy to the backup target
happens afterwards, outside QEMU.

Jobs are created with ``auto-dismiss: false``: a concluded job stays in ``query-jobs``
with its error until :func:`wait_point` dismisses it, so an end is never missed. Every
node and job this module makes carries the prefix ``bk``; :func:`abandon` removes what a
failed or interrupted backup left (jobs, staging nodes, the new point's bitmaps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from viridian.qemu.errors import MonitorError
from viridian.qemu.monitor import Monitor

BITMAP_PREFIX = "viridian-backup-"
JOB_PREFIX = "bk"
POLL_S = 0.2
PERF = {"max-chunk": 64 << 20, "max-workers": 8}
"""QEMU 7.2's ``x-perf`` of backup jobs: larger requests, fewer in flight (the defaults,
64 workers of one cluster each, were several times slower with 1 MiB clusters here)."""


def bitmap_name(point_id: str) -> str:
    """The dirty bitmap that tracks writes since point ``point_id``."""
    return BITMAP_PREFIX + point_id


@dataclass(frozen=True)
class PointDisk:
    """One disk of a point: the format node to read (``node``), the local staging image
    (``staging``, an existing qcow2 of the node's size), and the bitmap of the parent
    point when incremental."""

    node: str
    staging: str
    index: int
    since: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    node: str
    virtual_size: int
    bitmaps: frozenset[str]


async def image_node(monitor: Monitor, path: str) -> NodeInfo:
    """The format node that has image ``path`` open, its size and dirty bitmaps.

    :raises MonitorError: no node holds ``path``."""
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    assert isinstance(nodes, list)
    for node in nodes:
        if node.get("file") == path and node.get("drv") not in ("file", "nbd"):
            return NodeInfo(str(node["node-name"]), int(node["image"]["virtual-size"]),
                            frozenset(str(b["name"]) for b in node.get("dirty-bitmaps", [])
                                      if "name" in b))
    raise MonitorError(f"no block node has {path} open")


def _names(point_id: str, disk: PointDisk) -> tuple[str, str]:
    tag = point_id.replace("-", "")[:8]
    return f"{JOB_PREFIX}{tag}j{disk.index}", f"{JOB_PREFIX}{tag}t{disk.index}"


def point_actions(point_id: str, disks: Sequence[PointDisk]) -> list[dict[str, Any]]:
    """The ``transaction`` actions of the point in time (pure; module docstring)."""
    actions: list[dict[str, Any]] = []
    for disk in disks:
        job, target = _names(point_id, disk)
        backup: dict[str, Any] = {"job-id": job, "device": disk.node, "target": target,
                                  "sync": "full", "auto-dismiss": False, "x-perf": PERF}
        if disk.since is not None:
            backup.update(sync="bitmap", bitmap=bitmap_name(disk.since),
                          **{"bitmap-mode": "never"})
        actions.append({"type": "blockdev-backup", "data": backup})
        actions.append({"type": "block-dirty-bitmap-add",
                        "data": {"node": disk.node, "name": bitmap_name(point_id)}})
    return actions


async def start_point(monitor: Monitor, point_id: str, disks: Sequence[PointDisk]) -> None:
    """Open the staging images and run the point-in-time transaction (all disks or none).

    :raises MonitorError: QEMU refused (the staging nodes opened are closed again)."""
    for disk in disks:
        _, target = _names(point_id, disk)
        await monitor.execute("blockdev-add", {
            "driver": "qcow2", "node-name": target, "backing": None,
            "file": {"driver": "file", "filename": disk.staging}})
    try:
        await monitor.execute("transaction", {"actions": point_actions(point_id, disks)})
    except MonitorError:
        await abandon(monitor, point_id)
        raise


async def wait_point(monitor: Monitor, point_id: str, disks: Sequence[PointDisk],
                     progress: Callable[[float], None] | None = None) -> None:
    """Until every job of the point concluded; dismiss them and close the staging nodes.

    :raises MonitorError: a job failed (its error quoted) or vanished."""
    jobs = {_names(point_id, d)[0] for d in disks}
    while True:
        found = {str(j["id"]): j for j in await _query_jobs(monitor) if j["id"] in jobs}
        missing = jobs - found.keys()
        if missing:
            raise MonitorError(f"backup job(s) {', '.join(sorted(missing))} vanished")
        if progress is not None:
            done = sum(int(j.get("current-progress", 0)) for j in found.values())
            total = sum(int(j.get("total-progress", 0)) for j in found.values())
            progress(done / total if total else 0.0)
        if all(j["status"] == "concluded" for j in found.values()):
            break
        await asyncio.sleep(POLL_S)
    errors = [f"{j['id']}: {j['error']}" for j in found.values() if j.get("error")]
    for job in jobs:
        await monitor.execute("job-dismiss", {"id": job})
    await _close_targets(monitor, point_id)
    if errors:
        raise MonitorError(f"backup failed in QEMU: {'; '.join(errors)}")


PAUSE_TIMEOUT_S = 60.0
SETTLED = ("paused", "waiting", "pending", "concluded", "aborting", "null")
"""Job statuses in which a job does no I/O of its own."""


async def pause_jobs(monitor: Monitor, point_id: str, disks: Sequence[PointDisk]) -> list[str]:
    """Pause the point's jobs (``job-pause``) and wait until none does I/O; the ids of
    those paused here (a job that already ended is not). Used around a ``cont`` that
    re-activates the images the jobs read (:mod:`viridian.backup.memory`).

    :raises MonitorError: a job did not settle within 60 s, or vanished."""
    ids = [_names(point_id, d)[0] for d in disks]
    paused: list[str] = []
    for job_id in ids:
        try:
            await monitor.execute("job-pause", {"id": job_id})
            paused.append(job_id)
        except MonitorError:  # it ended meanwhile (a small disk): nothing to hold
            pass
    for _ in range(int(PAUSE_TIMEOUT_S / POLL_S)):
        status = {str(j["id"]): str(j["status"]) for j in await _query_jobs(monitor)}
        missing = [i for i in ids if i not in status]
        if missing:
            raise MonitorError(f"backup job(s) {', '.join(missing)} vanished")
        if all(status[i] in SETTLED for i in ids):
            return paused
        await asyncio.sleep(POLL_S / 4)
    raise MonitorError(f"the backup jobs of point {point_id} did not pause within "
                       f"{PAUSE_TIMEOUT_S:.0f} s")


async def resume_jobs(monitor: Monitor, job_ids: Sequence[str]) -> None:
    """Resume the jobs :func:`pause_jobs` paused."""
    for job_id in job_ids:
        await monitor.execute("job-resume", {"id": job_id})


async def _query_jobs(monitor: Monitor) -> list[dict[str, Any]]:
    jobs = await monitor.execute("query-jobs")
    assert isinstance(jobs, list)
    return jobs


async def _close_targets(monitor: Monitor, point_id: str) -> None:
    tag = f"{JOB_PREFIX}{point_id.replace('-', '')[:8]}t"
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    assert isinstance(nodes, list)
    for node in nodes:
        if str(node.get("node-name", "")).startswith(tag):
            with contextlib.suppress(MonitorError):  # a file node goes with its qcow2
                await monitor.execute("blockdev-del", {"node-name": node["node-name"]})


async def abandon(monitor: Monitor, point_id: str) -> None:
    """Cancel and dismiss the point's jobs, close its staging nodes and remove the
    bitmaps named after it: the VM's block graph as before the point (idempotent)."""
    tag = f"{JOB_PREFIX}{point_id.replace('-', '')[:8]}j"
    for job in await _query_jobs(monitor):
        if str(job["id"]).startswith(tag):
            if job["status"] != "concluded":
                await _cancel(monitor, str(job["id"]))
            await monitor.execute("job-dismiss", {"id": job["id"]})
    await _close_targets(monitor, point_id)
    await drop_bitmaps(monitor, keep=None, only=bitmap_name(point_id))


async def _cancel(monitor: Monitor, job_id: str) -> None:
    await monitor.execute("job-cancel", {"id": job_id})
    for _ in range(int(60 / POLL_S)):
        status = {str(j["id"]): j["status"] for j in await _query_jobs(monitor)}
        if status.get(job_id) in (None, "concluded"):
            return
        await asyncio.sleep(POLL_S)
    raise MonitorError(f"backup job {job_id} did not end after cancel")


async def drop_bitmaps(monitor: Monitor, keep: str | None, only: str | None = None) -> None:
    """Remove viridian's backup bitmaps on every node but ``keep`` (or just ``only``)."""
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    assert isinstance(nodes, list)
    for node in nodes:
        for bitmap in node.get("dirty-bitmaps", []):
            name = str(bitmap.get("name", ""))
            if not name.startswith(BITMAP_PREFIX) or name == keep:
                continue
            if only is not None and name != only:
                continue
            await monitor.execute("block-dirty-bitmap-remove",
                                  {"node": node["node-name"], "name": name})
