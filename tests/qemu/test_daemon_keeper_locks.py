"""A VM's storage daemon cannot start while another process holds its images' locks
(docs/architecture.md, "Storage daemons of stopped HA VMs"): ``DaemonKeeper.ensure``
retries only for ``lock_wait_s`` and then refuses in words that say what held the start
up, how long it waited, and that nothing was changed. Real daemons: one holds a VHD, the
keeper of another VM folder on the same VHD tries to start its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from viridian.disks import new_dynamic
from viridian.model import DiskFormat, DriveKind, IdeDrive, VMSettings
from viridian.qemu.errors import QemuStartError
from viridian.qemu.render.storage import render_storage_daemon
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.storage_daemon import StorageDaemon
from viridian.service.storage.daemons import DaemonKeeper

DAEMON = "/usr/bin/qemu-storage-daemon"


def _argv(vhd: Path, paths: RuntimePaths) -> list[str]:
    drive = IdeDrive(0, 0, DriveKind.HARD_DISK, str(vhd), DiskFormat.VPC)
    return render_storage_daemon(DAEMON, VMSettings(name="locked", ide=(drive,)), paths)


@pytest.mark.parametrize("wait_s", [0.0, 1.0])
def test_a_start_refused_on_a_held_lock_says_so_and_leaves_nothing(folder: Path,
                                                                  wait_s: float) -> None:
    vhd = folder / "disk.vhd"
    new_dynamic(vhd, 4 * 1024 * 1024)
    holder_paths = RuntimePaths(folder / "run" / "holder")
    mine = RuntimePaths(folder / "run" / "mine")
    keeper = DaemonKeeper(mine, "locked", lambda: _argv(vhd, mine), lambda: None)

    async def scenario() -> str:
        holder = await StorageDaemon.start(_argv(vhd, holder_paths), holder_paths, timeout=60)
        try:
            with pytest.raises(QemuStartError) as refused:
                await keeper.ensure(lock_wait_s=wait_s)
            assert holder.alive  # the holder is left alone
            return str(refused.value)
        finally:
            await holder.stop()

    text = asyncio.run(scenario())
    assert text.startswith("VM locked: an image is still in use by another process")
    assert ("after waiting 1 s for another cluster host to let go of it" in text) == (
        wait_s > 0)
    assert "the storage daemon was not started and nothing was changed" in text
    assert 'Failed to get "write" lock' in text  # QEMU's own words stay
    assert keeper.daemon is None
    assert not mine.storage_folder.exists()  # no folder, socket or record left behind
