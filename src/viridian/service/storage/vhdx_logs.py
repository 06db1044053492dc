"""Pending VHDX logs are replayed before QEMU or the storage daemon gets the image.

A VHDX whose header names a log (a writer stopped between logging a metadata change and
applying it, MS-VHDX §2.3.3) is replayed with :func:`viridian.disks.replay_vhdx_log`
when its VM starts (docs/architecture.md, "The storage path"): QEMU would replay it
itself when opening read-write, but refuses a dirty VHDX read-only and replays without
telling anyone. The log is its own journal: a replay cut short by a crash leaves the
header naming the log, and the next start replays it again (replay is idempotent).
"""

from __future__ import annotations

import asyncio
import logging

from viridian.disks import replay_vhdx_log
from viridian.model import DiskFormat, VMSettings
from viridian.model.slots import hard_disks

__all__ = ["replay_pending_logs"]

log = logging.getLogger(__name__)


async def replay_pending_logs(settings: VMSettings) -> list[str]:
    """Replay the pending log of every VHDX hard disk of ``settings`` (a VM's own disks:
    checkpoint overlays are qcow2 over them); returns the paths replayed.

    :raises viridian.disks.errors.DiskError: a log cannot be replayed (BadLog), the file
        is held by another program, or its headers are unusable — the VM does not start.
    """
    replayed = []
    for slot in hard_disks(settings):
        if slot.format is not DiskFormat.VHDX or not slot.path:
            continue
        if await asyncio.to_thread(replay_vhdx_log, slot.path):
            log.warning("replayed the pending log of %s (%s) before the VM started",
                        slot.path, slot.setting)
            replayed.append(slot.path)
    return replayed
