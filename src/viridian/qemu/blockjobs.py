"""Live checkpoint operations on a running QEMU's block graph (QMP).

- :func:`snapshot` switches disks to new qcow2 overlays atomically (one ``transaction``
  of ``blockdev-snapshot-sync`` with ``mode: existing``: the overlay files are created
  beforehand by :mod:`viridian.qemu.images`, so their headers already name the backing).
- :func:`stream` merges a backing layer into an image of the chain (``block-stream``;
  the guest keeps running and writing).
- :func:`commit_active` writes the active overlay into its backing and pivots to it
  (``block-commit`` + ``job-complete``).

Jobs run inside QEMU and outlive the service; each function first looks whether its job
already runs (a restarted service resumes waiting) and whether the graph already shows
the result (then it does nothing), so every call can be repeated safely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from viridian.qemu.errors import MonitorError
from viridian.qemu.monitor import Monitor, QmpEvent

Progress = Callable[[float], None]
POLL_S = 0.25


async def image_nodes(monitor: Monitor) -> dict[str, dict[str, Any]]:
    """``path → node`` for every image (format node) open in the process behind ``monitor``:
    QEMU, or for disks a storage daemon serves, the daemon (:meth:`Worker.block_monitor`)."""
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    assert isinstance(nodes, list)
    found: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if node.get("drv") not in ("file", "nbd") and node.get("file"):
            name = str(node["file"])
            found.setdefault(name, node)
    return found


async def _jobs(monitor: Monitor) -> dict[str, Mapping[str, Any]]:
    jobs = await monitor.execute("query-block-jobs")
    assert isinstance(jobs, list)
    return {str(job["device"]): job for job in jobs}


async def snapshot(monitor: Monitor, switches: list[tuple[str, str, str]]) -> None:
    """Atomically put overlay ``path`` with node name ``node`` on top of the open image
    ``below`` for each ``(below, path, node)``. Images already switched are skipped."""
    nodes = await image_nodes(monitor)
    actions = [
        {"type": "blockdev-snapshot-sync",
         "data": {"node-name": nodes[below]["node-name"], "snapshot-file": path,
                  "snapshot-node-name": node, "format": "qcow2", "mode": "existing"}}
        for below, path, node in switches if path not in nodes]
    if actions:
        await monitor.execute("transaction", {"actions": actions})


async def stream(monitor: Monitor, job_id: str, target: str, new_backing: str,
                 progress: Progress | None = None) -> None:
    """Merge everything between ``target`` and ``new_backing`` into ``target``."""
    nodes = await image_nodes(monitor)
    if nodes[target].get("backing_file") == new_backing:
        return
    if job_id not in await _jobs(monitor):
        await monitor.execute("block-stream", {
            "job-id": job_id, "device": nodes[target]["node-name"],
            "base-node": nodes[new_backing]["node-name"]})
    await _wait_job(monitor, job_id, progress)
    nodes = await image_nodes(monitor)
    if nodes[target].get("backing_file") != new_backing:
        raise MonitorError(f"merging into {target} ended but its backing is "
                           f"{nodes[target].get('backing_file')}, not {new_backing}")


async def commit_active(monitor: Monitor, job_id: str, top: str, base: str,
                        progress: Progress | None = None) -> None:
    """Write the active overlay ``top`` into ``base`` and make ``base`` the active image.
    Done when ``top`` is no longer in the graph."""
    nodes = await image_nodes(monitor)
    if top not in nodes:
        return
    top_node = nodes[top]["node-name"]
    with monitor.event_waiter("BLOCK_JOB_READY", predicate=_for(job_id)) as ready:
        jobs = await _jobs(monitor)
        if job_id not in jobs:
            await monitor.execute("block-commit", {
                "job-id": job_id, "device": top_node,
                "base-node": nodes[base]["node-name"]})
            jobs = await _jobs(monitor)
        if not jobs.get(job_id, {}).get("ready"):
            await _wait_ready(monitor, job_id, ready, progress)
    with monitor.event_waiter("BLOCK_JOB_COMPLETED", predicate=_for(job_id)) as completed:
        await monitor.execute("job-complete", {"id": job_id})
        event = await completed.wait(None)
    if event.data.get("error"):
        raise MonitorError(f"committing {top} into {base} failed: {event.data['error']}")
    await _delete_nodes_of(monitor, top, first=top_node)


async def release_image(monitor: Monitor, path: str) -> None:
    """Close ``path`` in QEMU if it is open but unused (a layer merged away that was opened
    with ``-blockdev`` stays open until deleted). Nodes still in use are left alone."""
    await _delete_nodes_of(monitor, path, first=None)


async def _delete_nodes_of(monitor: Monitor, path: str, first: str | None) -> None:
    """Nodes opened with ``-blockdev`` stay open until deleted (format node first)."""
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    assert isinstance(nodes, list)
    mine = sorted((n for n in nodes if n.get("file") == path), key=lambda n: n["drv"] == "file")
    names = ([first] if first else []) + [n["node-name"] for n in mine
                                          if n["node-name"] != first]
    for name in names:
        with contextlib.suppress(MonitorError):
            await monitor.execute("blockdev-del", {"node-name": name})


def _for(job_id: str) -> Callable[[QmpEvent], bool]:
    return lambda event: event.data.get("device") == job_id


async def _wait_ready(monitor: Monitor, job_id: str, ready: Any,
                      progress: Progress | None) -> None:
    while True:
        if await ready.next_or_none(POLL_S) is not None:
            return
        job = (await _jobs(monitor)).get(job_id)
        if job is None:
            raise MonitorError(f"block job {job_id} vanished before it was ready")
        if job.get("ready"):
            return
        _report(job, progress)


async def _wait_job(monitor: Monitor, job_id: str, progress: Progress | None) -> None:
    """Until ``job_id`` is gone (auto-dismissed when done); raise if it reported an error."""
    with monitor.event_waiter("BLOCK_JOB_COMPLETED", "BLOCK_JOB_ERROR",
                              predicate=_for(job_id)) as events:
        while True:
            event = await events.next_or_none(POLL_S)
            if event is not None and event.data.get("error"):
                raise MonitorError(f"block job {job_id} failed: {event.data['error']}")
            job = (await _jobs(monitor)).get(job_id)
            if job is None:
                return
            _report(job, progress)
            await asyncio.sleep(0)


def _report(job: Mapping[str, Any], progress: Progress | None) -> None:
    if progress is not None and job.get("len"):
        progress(min(1.0, int(job.get("offset", 0)) / int(job["len"])))
