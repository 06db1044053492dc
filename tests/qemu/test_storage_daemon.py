"""The per-VM storage daemon with real processes: a Worker whose VHD is served over NBD
saves and restores (QEMU holds no vpc node, so no migration blocker), the daemon is
recorded, found again from its own record, outlives QEMU (a dirty bitmap on its node
survives the save and the restore) and ends on ``stop``; a checkpoint overlay
made in the daemon takes over the export and is committed back with the export live; and
live migration between two QEMUs on this host sharing the daemon's export (downtime
printed)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from viridian.disks import new_dynamic, open_disk
from viridian.model import DiskFormat, DriveKind, IdeDrive, VMSettings
from viridian.qemu import blockjobs, images
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.monitor import Monitor
from viridian.qemu.process import START_TIMEOUT_S, read_start_time
from viridian.qemu.render.blockdev import render_blockdev
from viridian.qemu.render.storage import needs_storage_daemon, render_storage_daemon
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.storage_daemon import StorageDaemon
from viridian.qemu.worker import Worker

MB = 1024 * 1024
DAEMON = "/usr/bin/qemu-storage-daemon"
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def settings_with(vhd: Path) -> VMSettings:
    drive = IdeDrive(0, 0, DriveKind.HARD_DISK, str(vhd), DiskFormat.VPC)
    return VMSettings(name="sd", ide=(drive,))


def qemu_argv(paths: RuntimePaths, vhd: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-nodefaults", "-no-user-config",
        "-m", "64", "-display", "none", "-sandbox", SANDBOX,
        *render_blockdev("ide0-0", str(vhd), DiskFormat.VPC, nbd_socket=str(paths.nbd_socket)),
        "-device", "ide-hd,bus=ide.0,unit=0,drive=ide0-0-fmt,id=ide0-0",
        "-qmp", f"unix:{paths.qmp_socket},server=on,wait=off", *extra,
    ]


def test_only_vms_with_vhd_or_vhdx_disks_get_a_daemon(folder: Path) -> None:
    host = HostCapabilities(storage_daemon=DAEMON)
    assert needs_storage_daemon(settings_with(folder / "a.vhd"), host)
    assert not needs_storage_daemon(settings_with(folder / "a.vhd"), HostCapabilities())
    raw = IdeDrive(0, 0, DriveKind.HARD_DISK, str(folder / "a.img"), DiskFormat.RAW)
    assert not needs_storage_daemon(VMSettings(name="r", ide=(raw,)), host)
    argv = render_storage_daemon(DAEMON, settings_with(folder / "a.vhd"), RuntimePaths(folder))
    assert any(a.startswith("type=nbd,id=ide0-0,") and ",name=ide0-0," in a for a in argv)


def test_worker_with_daemon_saves_restores_reattaches_and_ends_it(folder: Path) -> None:
    vhd, state = folder / "disk.vhd", folder / "saved.vmstate"
    new_dynamic(vhd, 16 * MB)
    paths = RuntimePaths(folder / "run" / "vm")

    async def scenario() -> None:
        argv = render_storage_daemon(DAEMON, settings_with(vhd), paths)
        storage = await StorageDaemon.start(argv, paths)
        block = await storage.monitor()
        await block.execute("block-dirty-bitmap-add", {"node": "ide0-0-fmt", "name": "b0",
                                                     "granularity": 4096})
        worker = await Worker.launch(qemu_argv(paths, vhd), paths, vm_id="v", vm_name="sd",
                                     storage=storage)
        daemon = worker.record.storage_daemon
        assert daemon is not None and daemon.pid == storage.pid
        await worker.monitor.execute("human-monitor-command", {
            "command-line": "qemu-io -d ide0-0 \"write -P 0x5a 4096 4096\""})
        await worker.close()  # service restart: QEMU and daemon keep running
        await storage.close()
        storage = StorageDaemon.find(paths)
        assert storage.pid == daemon.pid and storage.argv == tuple(argv)
        worker = await Worker.attach(paths)
        worker.storage = storage
        await worker.save(state)  # a vpc node in QEMU would refuse: migration blocker
        await worker.cleanup()
        assert storage.alive and read_start_time(daemon.pid) is not None  # outlives QEMU
        restored = await Worker.launch(qemu_argv(paths, vhd, ("-incoming", "defer")), paths,
                                       vm_id="v", vm_name="sd", incoming_state=state,
                                       storage=storage)
        assert await restored.status() == "running"
        await restored.turn_off()
        await restored.cleanup()
        assert await _dirty_count(await storage.monitor(), "b0") == 4096  # survived both ends
        await storage.stop()
        assert read_start_time(daemon.pid) is None and not paths.storage_folder.exists()

    asyncio.run(scenario())
    with open_disk(vhd) as disk:
        assert disk.read(4096, 4096) == b"\x5a" * 4096


async def _dirty_count(block: Monitor, bitmap: str) -> int:
    nodes = await block.execute("query-named-block-nodes")
    assert isinstance(nodes, list)
    for node in nodes:
        for found in node.get("dirty-bitmaps", []):
            if found["name"] == bitmap:
                return int(found["count"])
    raise AssertionError(f"no bitmap {bitmap}: {nodes}")


def _qemu_io(command: str) -> dict[str, object]:
    return {"command-line": f"qemu-io -d ide0-0 \"{command}\""}


def test_overlay_made_in_the_daemon_takes_the_export_and_commits_back(folder: Path) -> None:
    vhd, overlay = folder / "disk.vhd", folder / "disk-overlay.qcow2"
    new_dynamic(vhd, 16 * MB)
    paths = RuntimePaths(folder / "run" / "vm")

    async def scenario() -> None:
        storage = await StorageDaemon.start(
            render_storage_daemon(DAEMON, settings_with(vhd), paths), paths)
        worker = await Worker.launch(qemu_argv(paths, vhd), paths, vm_id="v", vm_name="sd",
                                     storage=storage)
        hmp = "human-monitor-command"
        await worker.monitor.execute(hmp, _qemu_io("write -P 0x11 0 4096"))
        await images.create_overlay(overlay, str(vhd), "vpc")
        block = await worker.block_monitor()
        await blockjobs.snapshot(block, [(str(vhd), str(overlay), "overlay")])
        exports = await block.execute("query-block-exports")
        assert isinstance(exports, list) and exports[0]["node-name"] == "overlay"
        await worker.monitor.execute(hmp, _qemu_io("write -P 0x22 4096 4096"))
        with open_disk(vhd) as disk:  # the write went to the overlay, not the VHD
            assert disk.read(4096, 4096) == bytes(4096)
        await blockjobs.commit_active(block, "commit-1", str(overlay), str(vhd))
        assert str(overlay) not in await blockjobs.image_nodes(block)
        await worker.monitor.execute(hmp, _qemu_io("write -P 0x33 8192 4096"))
        await worker.turn_off()
        await worker.cleanup()
        await storage.stop()

    asyncio.run(scenario())
    with open_disk(vhd) as disk:  # before, during (committed) and after the overlay
        assert disk.read(0, 12288) == b"\x11" * 4096 + b"\x22" * 4096 + b"\x33" * 4096


def test_live_migration_between_two_qemus_sharing_the_export(folder: Path) -> None:
    vhd = folder / "disk.vhd"
    new_dynamic(vhd, 16 * MB)
    source_paths = RuntimePaths(folder / "a")
    target_paths = RuntimePaths(folder / "b")
    for p in (source_paths, target_paths):
        p.folder.mkdir()

    async def scenario() -> None:
        storage = await StorageDaemon.start(
            render_storage_daemon(DAEMON, settings_with(vhd), source_paths), source_paths)
        # The target opens the same export: its argv names the source folder's socket.
        target_argv = qemu_argv(source_paths, vhd, ("-incoming", f"unix:{folder}/mig.sock"))
        target_argv[target_argv.index(f"unix:{source_paths.qmp_socket},server=on,wait=off")] \
            = f"unix:{target_paths.qmp_socket},server=on,wait=off"
        source = subprocess.Popen(qemu_argv(source_paths, vhd), stdin=subprocess.DEVNULL)
        target = subprocess.Popen(target_argv, stdin=subprocess.DEVNULL)
        try:
            await _migrate(source_paths, target_paths, folder)
        finally:
            for proc in (source, target):
                proc.kill()
                proc.wait()
            await storage.stop()

    asyncio.run(scenario())
    with open_disk(vhd) as disk:  # written before (source) and after (target) the switch
        assert disk.read(0, 8192) == b"\x33" * 4096 + b"\x44" * 4096


async def _connect(paths: RuntimePaths) -> Monitor:
    monitor = Monitor(paths.folder.name)
    deadline = time.monotonic() + START_TIMEOUT_S  # the product's own start-up bound
    while not paths.qmp_socket.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await monitor.connect(paths.qmp_socket, timeout=START_TIMEOUT_S)
    return monitor


async def _migrate(source_paths: RuntimePaths, target_paths: RuntimePaths, folder: Path) -> None:
    source, target = await _connect(source_paths), await _connect(target_paths)
    try:
        assert await source.status() == "running"
        await source.execute("human-monitor-command", {
            "command-line": "qemu-io -d ide0-0 \"write -P 0x33 0 4096\""})
        await source.execute("migrate", {"uri": f"unix:{folder}/mig.sock"})
        info: dict[str, object] = {}
        for _ in range(3000):
            info = await source.execute("query-migrate")  # type: ignore[assignment]
            if info.get("status") in ("completed", "failed"):
                break
            await asyncio.sleep(0.02)
        assert info.get("status") == "completed", info
        print(f"live migration over the shared NBD export: downtime {info.get('downtime')} ms, "
              f"total {info.get('total-time')} ms")
        for _ in range(500):
            if await target.status() == "running":
                break
            await asyncio.sleep(0.02)
        assert await target.status() == "running"
        assert await source.status() == "postmigrate"
        await target.execute("human-monitor-command", {  # the target writes on
            "command-line": "qemu-io -d ide0-0 \"write -P 0x44 4096 4096\""})
    finally:
        await source.close()
        await target.close()
