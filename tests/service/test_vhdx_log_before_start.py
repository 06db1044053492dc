"""A VM's VHDX with a pending log is replayed before QEMU or the storage daemon gets it
(docs/architecture.md, "The storage path"): the service's replay step on a dirty image
made like a crashed writer leaves it (tests/disks/test_vhdx_log.py)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.disks.test_vhdx_log import make_dirty, read_all
from viridian.model import DiskFormat, DriveKind, IdeDrive, VMSettings
from viridian.service.storage.vhdx_logs import replay_pending_logs


def test_a_dirty_vhdx_is_replayed_once_and_qemu_then_opens_it(tmp_path: Path) -> None:
    path, model = make_dirty(tmp_path)
    other = tmp_path / "base.raw"  # a raw disk of the same VM is left alone
    settings = VMSettings(name="v", ide=(
        IdeDrive(0, 0, DriveKind.HARD_DISK, str(path), DiskFormat.VHDX),
        IdeDrive(0, 1, DriveKind.HARD_DISK, str(other), DiskFormat.RAW)))
    assert asyncio.run(replay_pending_logs(settings)) == [str(path)]
    assert asyncio.run(replay_pending_logs(settings)) == []  # nothing pending any more
    opened = subprocess.run(["qemu-img", "info", "-f", "vhdx", str(path)],
                            capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr  # read-only QEMU refused it before
    assert read_all(path) == model
