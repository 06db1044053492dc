"""Moving a running VM's disk image to another file (docs/architecture.md, "Migration":
``vm move-storage``), QEMU 7.2 ``qapi/block-core.json``.

The new image (created beforehand, same format and virtual size) is opened as a node of
its own (``blockdev-add``); ``blockdev-mirror`` with ``sync: full`` and ``copy-mode:
write-blocking`` copies the disk while the guest writes; once ready every guest write
reaches both images before it completes, so the caller can commit the new path *before*
the pivot (a crash after that loses nothing); ``job-complete`` pivots the guest's device
onto the new node; the old image's nodes are
deleted (``blockdev-del``: it is closed). Cancelled or failed before the pivot, the job is
cancelled and the new node deleted: the guest keeps its old image.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

from .blockjobs import image_nodes, release_image
from .errors import MonitorError, QemuTimeout
from .monitor import Monitor

__all__ = ["cancel_mirrors", "export_for_incoming", "finish_mirrors", "mirror_image",
           "mirror_to_nbd", "stop_exports"]

_POLL_S = 0.1
_names = itertools.count(1)


async def mirror_image(monitor: Monitor, source: str, target: str, fmt: str,
                       on_ready: Callable[[], None],
                       progress: Callable[[float], None] | None = None,
                       timeout: float = 3600.0) -> None:
    """Move the running guest's image ``source`` to ``target`` (an existing empty image of
    format ``fmt``, as large as ``source``); ``on_ready`` runs once both are in step (it
    commits the new path; raising there undoes the move); on return QEMU uses ``target``
    only and has closed ``source``.

    :raises MonitorError: ``source`` is not open in QEMU, or QEMU refused or the mirror
        failed (the guest keeps ``source``; ``target`` is closed again).
    :raises QemuTimeout: not ready within ``timeout`` s (undone likewise).
    """
    nodes = await image_nodes(monitor)
    if source not in nodes:
        raise MonitorError(f"{source} is not open in QEMU", command="query-named-block-nodes")
    device = str(nodes[source]["node-name"])
    node = f"mv{next(_names)}-{device}"[:31]
    job = f"mv-{node}"
    await monitor.execute("blockdev-add", {"driver": fmt, "node-name": node, "file": {
        "driver": "file", "filename": target}})
    try:
        await monitor.execute("blockdev-mirror", {
            "job-id": job, "device": device, "target": node, "sync": "full",
            "copy-mode": "write-blocking", "auto-dismiss": False})
        await _wait_ready(monitor, job, progress, timeout)
        on_ready()
        await monitor.execute("job-complete", {"id": job})
        await _wait_concluded(monitor, job, timeout)
    except BaseException:
        with contextlib.suppress(MonitorError, QemuTimeout):
            await monitor.execute("job-cancel", {"id": job})
            await _wait_concluded(monitor, job, 30.0, check=False)
        with contextlib.suppress(MonitorError, QemuTimeout):
            await monitor.execute("blockdev-del", {"node-name": node})
        raise
    await release_image(monitor, source)


async def _job(monitor: Monitor, job: str) -> dict[str, object] | None:
    jobs = await monitor.execute("query-jobs")
    assert isinstance(jobs, list)
    return next((j for j in jobs if j.get("id") == job), None)


async def _wait_ready(monitor: Monitor, job: str, progress: Callable[[float], None] | None,
                      timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await _job(monitor, job)
        if info is None or info.get("status") in ("concluded", "aborting", "null"):
            raise MonitorError(f"the mirror {job} ended before it was ready: "
                               f"{(info or {}).get('error', 'no job')}", command="blockdev-mirror")
        if info.get("status") == "ready":
            return
        total = int(str(info.get("total-progress", 0)))
        if progress is not None and total:
            progress(int(str(info.get("current-progress", 0))) / total)
        if asyncio.get_running_loop().time() > deadline:
            raise QemuTimeout(f"the mirror {job} was not ready within {timeout:g} s")
        await asyncio.sleep(_POLL_S)


async def _wait_concluded(monitor: Monitor, job: str, timeout: float,
                          check: bool = True) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (info := await _job(monitor, job)) is not None and info.get("status") != "concluded":
        if asyncio.get_running_loop().time() > deadline:
            raise QemuTimeout(f"the mirror {job} did not end within {timeout:g} s")
        await asyncio.sleep(_POLL_S)
    if info is None:
        return
    await monitor.execute("job-dismiss", {"id": job})
    if check and info.get("error"):
        raise MonitorError(f"the mirror {job} failed: {info['error']}", command="job-complete")


# --- shared-nothing: disks copied to the target's incoming QEMU over NBD -------------


async def export_for_incoming(monitor: Monitor, host: str, port: int,
                              paths: list[str]) -> dict[str, str]:
    """Target (QEMU started ``-incoming defer``): serve each image in ``paths`` writable
    over NBD on ``host:port`` (``nbd-server-start``, ``block-export-add``; QEMU activates
    an exported node); returns ``path → export name``.

    :raises MonitorError: QEMU refused (e.g. the port is taken).
    """
    nodes = await image_nodes(monitor)
    await monitor.execute("nbd-server-start", {"addr": {"type": "inet", "data": {
        "host": host, "port": str(port)}}})
    exports = {}
    for path in paths:
        node = str(nodes[path]["node-name"])
        await monitor.execute("block-export-add", {
            "type": "nbd", "id": f"mig-{node}", "node-name": node, "writable": True,
            "name": node})
        exports[path] = node
    return exports


async def stop_exports(monitor: Monitor) -> None:
    """Target, at the switch-over: the NBD server ends (its exports with it)."""
    await monitor.execute("nbd-server-stop")


async def mirror_to_nbd(monitor: Monitor, targets: dict[str, str], host: str, port: int,
                        progress: Callable[[float], None] | None = None,
                        timeout: float = 3600.0) -> list[str]:
    """Source: mirror each image (``path → export name``) to the target's NBD export until
    every mirror is ready (writes then go to both); returns the job ids for
    :func:`finish_mirrors` / :func:`cancel_mirrors`.

    :raises MonitorError: a mirror failed (every mirror started is cancelled).
    """
    nodes = await image_nodes(monitor)
    jobs: list[str] = []
    try:
        for path, export in targets.items():
            job = f"nbd-{next(_names)}"
            await monitor.execute("blockdev-add", {
                "driver": "nbd", "node-name": job, "export": export,
                "server": {"type": "inet", "host": host, "port": str(port)}})
            await monitor.execute("blockdev-mirror", {
                "job-id": job, "device": str(nodes[path]["node-name"]), "target": job,
                "sync": "full", "auto-dismiss": False})
            jobs.append(job)
        for job in jobs:
            await _wait_ready(monitor, job, progress, timeout)
    except BaseException:
        await cancel_mirrors(monitor, jobs)
        raise
    return jobs


async def finish_mirrors(monitor: Monitor, jobs: list[str]) -> None:
    """Source, paused after the memory migration: end each ready mirror without a pivot
    (``block-job-cancel``: in step, the last writes flushed) and close the NBD nodes."""
    for job in jobs:
        await monitor.execute("block-job-cancel", {"device": job})
    for job in jobs:
        await _wait_concluded(monitor, job, 60.0)
        with contextlib.suppress(MonitorError):
            await monitor.execute("blockdev-del", {"node-name": job})


async def cancel_mirrors(monitor: Monitor, jobs: list[str]) -> None:
    """Give the mirrors up (forced) and close their NBD nodes; never raises."""
    for job in jobs:
        with contextlib.suppress(MonitorError, QemuTimeout):
            await monitor.execute("block-job-cancel", {"device": job, "force": True})
            await _wait_concluded(monitor, job, 30.0, check=False)
        with contextlib.suppress(MonitorError, QemuTimeout):
            await monitor.execute("blockdev-del", {"node-name": job})
