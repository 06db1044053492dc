"""The storage daemon's environment: glibc malloc tunables that keep its per-request NBD
buffers in the heap (docs/architecture.md, "Guest-level cost"), an admin's own
``GLIBC_TUNABLES`` kept after them, and the variable reaching the real daemon process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from viridian.disks import new_dynamic
from viridian.model import DiskFormat, DriveKind, IdeDrive, VMSettings
from viridian.qemu.render.storage import render_storage_daemon
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.storage_daemon import MALLOC_TUNABLES, StorageDaemon, daemon_environment

DAEMON = "/usr/bin/qemu-storage-daemon"


def test_tunables_added_and_the_rest_of_the_environment_kept() -> None:
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    env = daemon_environment(base)
    assert env == {**base, "GLIBC_TUNABLES": MALLOC_TUNABLES}
    assert "GLIBC_TUNABLES" not in base  # the service's own environment is not changed
    assert "glibc.malloc.mmap_threshold=4194304" in MALLOC_TUNABLES.split(":")
    assert "glibc.malloc.trim_threshold=33554432" in MALLOC_TUNABLES.split(":")


def test_an_admins_own_tunables_come_last_so_they_win() -> None:
    own = "glibc.malloc.trim_threshold=0:glibc.malloc.arena_max=2"
    env = daemon_environment({"GLIBC_TUNABLES": own})
    assert env["GLIBC_TUNABLES"] == f"{MALLOC_TUNABLES}:{own}"


def test_the_started_daemon_runs_with_the_tunables(folder: Path) -> None:
    vhd = folder / "disk.vhd"
    new_dynamic(vhd, 4 * 1024 * 1024)
    drive = IdeDrive(0, 0, DriveKind.HARD_DISK, str(vhd), DiskFormat.VPC)
    paths = RuntimePaths(folder / "run" / "vm")
    argv = render_storage_daemon(DAEMON, VMSettings(name="e", ide=(drive,)), paths)

    async def scenario() -> None:
        storage = await StorageDaemon.start(argv, paths, timeout=60)
        try:
            # glibc parses GLIBC_TUNABLES in place (each ':' becomes a NUL), so the
            # process's environment block holds the tunables NUL-separated.
            environ = Path(f"/proc/{storage.pid}/environ").read_bytes()
            expected = "GLIBC_TUNABLES=" + MALLOC_TUNABLES
            assert expected.encode() in environ.replace(b"\0", b":")
        finally:
            await storage.stop()

    asyncio.run(scenario())
