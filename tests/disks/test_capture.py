"""``disk capture`` (P2V, issue 16 part 4): an ext4 file system with files on a loop
device is captured into a VHDX that holds the same files (converted back to raw by
``qemu-img`` and read with ``debugfs``); unused space is skipped (far fewer bytes read
than the device holds, the output small although the free space is full of stale data);
a device mounted read-write and bad names are refused, leaving nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from viridian.cli.main import cli
from viridian.disks.capture import capture, used_from_dumpe2fs
from viridian.disks.errors import DiskExists, InvalidDiskArgument

MB = 1 << 20
SIZE = 64 * MB


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Path]:
    """A loop device over a 64 MiB file: stale non-zero bytes everywhere, then an ext4
    with two files (one 3 MiB)."""
    if os.geteuid() != 0:
        pytest.skip("losetup needs root")
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.write(b"\xa5" * SIZE)  # stale data a file system's free space may hold
    _run("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0", str(backing))
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("captured from a block device\n")
    (files / "big.bin").write_bytes(bytes(range(256)) * (3 * MB // 256))
    for name in ("hello.txt", "big.bin"):
        _run("debugfs", "-w", "-R", f"write {files / name} {name}", str(backing))
    device = Path(_run("losetup", "--find", "--show", "--read-only", str(backing)).strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", str(device)], check=False)


def test_capture_of_an_ext4_loop_device_reads_the_files_back(loop: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "p2v.vhdx"
    result = capture(loop, out)
    assert (result.method, result.size) == ("ext", SIZE)
    assert result.read_bytes < SIZE // 4  # the free blocks were not read
    assert os.stat(out).st_blocks * 512 < SIZE // 4  # nor written
    raw = tmp_path / "back.raw"
    _run("qemu-img", "convert", "-f", "vhdx", "-O", "raw", str(out), str(raw))
    assert _run("debugfs", "-R", "cat hello.txt", str(raw)) == "captured from a block device\n"
    big = subprocess.run(["debugfs", "-R", "cat big.bin", str(raw)], check=True,
                         capture_output=True).stdout
    assert big == bytes(range(256)) * (3 * MB // 256)
    check = subprocess.run(["e2fsck", "-fn", str(raw)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with pytest.raises(DiskExists):
        capture(loop, out)


def test_cli_capture_and_refusals(loop: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["disk", "capture", str(loop), str(tmp_path / "c.vhd")])
    assert done.exit_code == 0, done.output
    assert f"captured {loop} (64" in done.output and "ext file system" in done.output
    bad = CliRunner().invoke(cli, ["disk", "capture", str(loop), str(tmp_path / "c.raw")])
    assert bad.exit_code == 2 and "must be named *.vhdx or *.vhd" in bad.output
    with pytest.raises(InvalidDiskArgument, match="not a block device"):
        capture(Path("/dev/null"), tmp_path / "null.vhdx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.vhd", "disk.img", "files"]


def test_mounted_read_write_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mount needs root")
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(16 * MB)
    _run("mkfs.ext4", "-q", "-F", str(image))
    device = Path(_run("losetup", "--find", "--show", str(image)).strip())
    point = tmp_path / "mnt"
    point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "ext4", str(device), str(point)],
                                 capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount here: {mounted.stderr.strip()}")
        try:
            with pytest.raises(InvalidDiskArgument, match="mounted read-write"):
                capture(device, tmp_path / "m.vhdx")
            assert not (tmp_path / "m.vhdx").exists()
        finally:
            subprocess.run(["umount", str(point)], check=False)
    finally:
        subprocess.run(["losetup", "-d", str(device)], check=False)


def test_used_ranges_from_dumpe2fs_text() -> None:
    text = ("Block count:              100\nBlock size:               1024\n"
            "Group 0: (Blocks 1-99)\n  Free blocks: 10-19, 30, 50-99\n")
    assert used_from_dumpe2fs(text, 200 * 1024) == [
        (0, 10 * 1024), (20 * 1024, 30 * 1024), (31 * 1024, 50 * 1024),
        (100 * 1024, 200 * 1024)]
