"""A disk that a running QEMU holds open is never modified (QEMU's OFD image locks)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from viridian.disks import (
    DiskInUse,
    check,
    compact,
    convert,
    expand,
    inspect,
    merge,
    new_differencing,
    new_dynamic,
    open_disk,
)
from viridian.disks.locks import PERM_BASE, _held_by_other

from .helpers import MiB


def _locked(path: Path) -> bool:
    with open(path, "rb") as f:
        return _held_by_other(f.fileno(), PERM_BASE)


@contextmanager
def held_by(argv: list[str], path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a QEMU program that opens ``path``; yield once its locks are in place."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if _locked(path) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None and _locked(path), "QEMU did not take its image locks"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def qemu_vm(path: Path, read_only: bool = False) -> list[str]:
    ro = ",read-only=on" if read_only else ""
    return [
        "qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-machine", "accel=tcg",
        "-drive", f"file={path},format=vpc,if=virtio{ro}",
    ]  # fmt: skip


def test_a_running_vm_s_disk_is_never_modified(tmp_path: Path) -> None:
    disk = tmp_path / "vm.vhd"
    new_dynamic(disk, 8 * MiB)
    before = disk.read_bytes()
    with held_by(qemu_vm(disk), disk):
        for attempt in (
            lambda: open_disk(disk, writable=True),
            lambda: compact(disk),
            lambda: expand(disk, 16 * MiB),
            lambda: check(disk, repair=True),
            lambda: convert(disk, tmp_path / "copy.vhd", "dynamic"),  # a torn read
        ):
            with pytest.raises(DiskInUse, match="in use by another program"):
                attempt()
        assert inspect(disk).virtual_size == 8 * MiB  # metadata reads stay possible
    assert disk.read_bytes() == before
    assert not (tmp_path / "copy.vhd").exists()


def test_qemu_io_holding_a_child_blocks_merge_and_a_read_only_vm_blocks_writes(
    tmp_path: Path,
) -> None:
    new_dynamic(tmp_path / "p.vhd", 8 * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    qemu_io = ["qemu-io", "-f", "vpc", str(tmp_path / "c.vhd")]
    with held_by(qemu_io, tmp_path / "c.vhd"), pytest.raises(DiskInUse):
        merge(tmp_path / "c.vhd", into_parent=True)
    assert (tmp_path / "c.vhd").exists()
    with held_by(qemu_vm(tmp_path / "p.vhd", read_only=True), tmp_path / "p.vhd"):
        with pytest.raises(DiskInUse, match="write"):
            open_disk(tmp_path / "p.vhd", writable=True)
        with open_disk(tmp_path / "p.vhd") as d:  # reading a read-only shared disk is fine
            assert d.read(0, 512) == bytes(512)


def test_qemu_refuses_a_disk_we_hold(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "d.vhd", 8 * MiB)
    with open_disk(tmp_path / "d.vhd", writable=True):
        res = subprocess.run(
            ["qemu-io", "-f", "vpc", "-c", "read 0 512", str(tmp_path / "d.vhd")],
            capture_output=True, text=True,
        )  # fmt: skip
    assert "lock" in (res.stdout + res.stderr).lower()


def test_the_refusal_names_the_program_holding_the_disk(tmp_path: Path) -> None:
    disk = tmp_path / "vm.vhd"
    new_dynamic(disk, 8 * MiB)
    with held_by(qemu_vm(disk), disk) as qemu, pytest.raises(DiskInUse) as refused:
        open_disk(disk, writable=True)
    assert f"qemu-system-x86_64 pid {qemu.pid}" in str(refused.value)
    assert "stop the VM or detach the disk" in str(refused.value)


def test_a_storage_daemon_holding_the_disk_is_named_with_what_to_do(tmp_path: Path) -> None:
    disk = tmp_path / "vm.vhd"
    new_dynamic(disk, 8 * MiB)
    daemon = ["qemu-storage-daemon", "--blockdev",
              f"driver=file,filename={disk},node-name=f0", "--blockdev",
              "driver=vpc,file=f0,node-name=d0"]
    with held_by(daemon, disk) as proc, pytest.raises(DiskInUse) as refused:
        compact(disk)
    message = str(refused.value)
    assert f"qemu-storage-daemon pid {proc.pid}" in message
    assert "storage daemon holds the disks of a registered VM" in message
    assert "nothing was changed" in message
