"""``POST /vms/{ref}/move-storage`` (Hyper-V's Move-VMStorage, on one host;
docs/architecture.md, "Migration"): the VM's hard disk images move to another folder.

Running VM: per disk, a new image of the same format and size in the folder, a
write-blocking mirror in QEMU (:mod:`viridian.qemu.migration_storage`), the new path
committed once both images are in step, the pivot, then the old file removed. Off VM: a
sparse copy, the commit, then the old file removed. The VM's configuration folder stays.
Refused (nothing changed): other states, checkpoints, a running VM a storage daemon
serves, a folder that is not an existing directory, a file already there.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.errors import Conflict, HostError, InvalidSetting
from viridian.model import settings_from_dict, to_dict
from viridian.model.slots import hard_disks
from viridian.model.states import VMState
from viridian.qemu.migration_storage import mirror_image
from viridian.service.jobs import Job
from viridian.service.migration.host import MigrationHost

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

Move = tuple[str, str, str]
"""(old path, new path, QEMU format)."""


def plan_moves(live: LiveVM, folder: Path, has_checkpoints: bool) -> list[Move]:
    """Which file goes where; refuses what cannot move (see the module docstring)."""
    name = live.record.name
    if live.state not in (VMState.RUNNING, VMState.OFF):
        raise Conflict(f"cannot move the storage of VM '{name}': it is {live.state.value}; "
                       "allowed when Running or Off; nothing was changed", vm=name,
                       state=live.state.value)
    if has_checkpoints:
        raise Conflict(f"cannot move the storage of VM '{name}': it has checkpoints; delete "
                       "or apply them first; nothing was changed", vm=name)
    if live.state is VMState.RUNNING and live.storage_daemon_serves:
        raise Conflict(f"cannot move the storage of running VM '{name}': its storage daemon "
                       "serves its disks; turn it off first; nothing was changed", vm=name)
    if not folder.is_absolute() or not folder.is_dir():
        raise InvalidSetting("folder", str(folder), "an existing folder (absolute path)")
    moves = [(str(d.path), str(folder / Path(str(d.path)).name), str(d.format or "raw"))
             for d in hard_disks(live.record.settings) if d.path]
    targets = [new for _, new, _ in moves]
    for old, new, _ in moves:
        if Path(new).exists() or targets.count(new) > 1:
            raise Conflict(f"cannot move {old} to {new}: a file of that name is there (or two "
                           "disks have the same name); nothing was changed", path=new)
    if not moves:
        raise Conflict(f"VM '{name}' has no hard disk to move; nothing was changed", vm=name)
    return moves


class StorageMoves:
    """Moves of a VM's disks to another folder of this host."""

    def __init__(self, host: MigrationHost) -> None:
        self.host = host

    def move(self, ref: str, folder: str) -> dict[str, Any]:
        live = self.host.find_vm(ref)
        plan_moves(live, Path(folder), self.host.has_checkpoints(live.record.id))
        self.host.check_disk_work(live, "move the storage")

        async def run(job: Job) -> dict[str, Any]:
            moves = plan_moves(live, Path(folder), self.host.has_checkpoints(live.record.id))
            span = 100 / len(moves)
            for index, (old, new, fmt) in enumerate(moves):
                job.report(index * span, f"moving {old}")
                await self._move_one(live, old, new, fmt, _scaled(job, index * span, span))
            return {"vm": live.record.name, "moved": {old: new for old, new, _ in moves}}

        return self.host.jobs.submit("move_storage", live.record.id, live.record.name,
                                     run).to_dict()

    async def _move_one(self, live: LiveVM, old: str, new: str, fmt: str,
                        progress: Callable[[float], None]) -> None:
        if live.state is VMState.OFF:
            await live.end_storage_daemon()  # an Off VM's daemon holds the images open
        await _create_like(old, new, fmt, live.state is VMState.OFF)
        try:
            if live.state is VMState.RUNNING:
                await mirror_image(live.require_worker().monitor, old, new, fmt,
                                   lambda: self._commit(live, old, new), progress)
            else:
                self._commit(live, old, new)  # the daemon was ended before the copy
        except BaseException:
            if not _path_in(live, old):  # committed, then the pivot failed: QEMU kept old
                self._commit(live, new, old)
            Path(new).unlink(missing_ok=True)
            raise
        Path(old).unlink(missing_ok=True)

    def _commit(self, live: LiveVM, old: str, new: str) -> None:
        """The disk at ``old`` is at ``new`` now: in the catalog, then in vm.json."""
        data = to_dict(live.record.settings)
        for drive in data.get("ide", []):
            if drive.get("path") == old:
                drive["path"] = new
        for controller in data.get("scsi", []):
            for disk in controller.get("disks", []):
                if disk.get("path") == old:
                    disk["path"] = new
        record = replace(live.record, settings=settings_from_dict(data))
        self.host.catalog.update_vm(record)
        live.record = record
        self.host.settings_committed(live)


def _scaled(job: Job, at: float, span: float) -> Callable[[float], None]:
    return lambda fraction: job.report(at + fraction * span)


def _path_in(live: LiveVM, path: str) -> bool:
    return any(d.path == path for d in hard_disks(live.record.settings))


async def _create_like(old: str, new: str, fmt: str, copy: bool) -> None:
    """``new``: a sparse copy of ``old`` (``copy``), else an empty image as large."""
    if copy:
        argv = ["cp", "--sparse=always", "--", old, new]
    else:
        size = await virtual_size(old, fmt)
        argv = ["qemu-img", "create", "-q", "-f", fmt, new, str(size)]
    proc = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        Path(new).unlink(missing_ok=True)
        raise HostError(f"cannot create {new}: {err.decode(errors='replace').strip()}",
                        path=new)
    os.chmod(new, os.stat(old).st_mode & 0o777)


async def virtual_size(path: str, fmt: str) -> int:
    """The virtual size of the image ``path`` (``qemu-img info -U``: also while open)."""
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "info", "--output=json", "-U", "-f", fmt, path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise HostError(f"cannot read the size of {path}: {err.decode(errors='replace')}",
                        path=path)
    return int(json.loads(out)["virtual-size"])
