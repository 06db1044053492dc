"""VHDX log replay (MS-VHDX §2.3): a dirty VHDX is replayed before any use, idempotently.

The dirty image is built the way a writer that crashed would leave it: a new block's
data already in place at the end of the file, the BAT sector that points to it, a data
sector and a zero range only in the log, and LogGuid set in the headers. QEMU's own
replay (``qemu-img check -r all``) is the oracle for what the disk holds afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from viridian.disks import (
    BadLog,
    check,
    convert,
    expand,
    inspect,
    open_disk,
    replay_vhdx_log,
)
from viridian.disks.fileio import ImageFile, record_writes
from viridian.disks.vhdx import VhdxImage
from viridian.disks.vhdx_layout import PAYLOAD_FULLY_PRESENT, bat_entry, entry_offset
from viridian.disks.vhdx_log import LogWrite, pack_entry, update_headers

from .helpers import MiB, make_pattern, qemu_img, qemu_info, write_raw

SIZE = 8 * MiB


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_all(path: Path, writable: bool = False) -> bytes:
    with open_disk(path, writable=writable) as disk:
        return disk.read(0, disk.size)


def make_dirty(folder: Path, entries: int = 1) -> tuple[Path, bytes]:
    """A dynamic VHDX with a pending log, and the content it has once replayed."""
    model = bytearray(SIZE)
    model[:MiB] = os.urandom(MiB)
    path = folder / "dirty.vhdx"
    convert(write_raw(folder / "base.raw", model), path, "dynamic", block_size=MiB)
    with open_disk(path) as disk:
        assert isinstance(disk, VhdxImage)
        s, header, slot, new_block = disk.s, disk.s.header, disk.s.slot, disk.alloc_pos
        block0 = entry_offset(s.bat[disk.bat_index(0)])
        bat_sector = s.bat_region.file_offset + disk.bat_index(5) * 8 // 4096 * 4096
        bat = bytearray(disk.file.pread(4096, bat_sector))
    fresh = os.urandom(MiB)  # block 5's data: already on disk, only its BAT entry is logged
    with open(path, "r+b") as f:
        f.seek(new_block)
        f.write(fresh)
    at = disk.bat_index(5) * 8 % 4096
    bat[at : at + 8] = bat_entry(PAYLOAD_FULLY_PRESENT, new_block).to_bytes(8, "little")
    sector = os.urandom(4096)
    writes = [
        LogWrite(bat_sector, 4096, bytes(bat)),
        LogWrite(block0 + 64 * 1024, 4096, sector),
        LogWrite(block0 + 128 * 1024, 8192),  # a zero descriptor
    ]
    model[5 * MiB : 6 * MiB] = fresh
    model[64 * 1024 : 68 * 1024] = sector
    model[128 * 1024 : 136 * 1024] = bytes(8192)
    write_log(path, header, slot, writes, entries, new_block + MiB)
    return path, bytes(model)


def write_log(path: Path, header: object, slot: int, writes: list[LogWrite], entries: int,
              size: int) -> None:  # fmt: skip
    """Put ``writes`` into ``entries`` consecutive log entries and set LogGuid."""
    from viridian.disks.vhdx_layout import Header

    assert isinstance(header, Header)
    guid, pos = uuid.uuid4(), 0
    stale = pack_entry(writes[:1], 3, guid, size)  # an older, superseded entry first
    chunks = [writes[i::entries] for i in range(entries)]
    with ImageFile(path, writable=True, lock=False) as f:
        f.pwrite(stale, header.log_offset)
        pos = len(stale)
        first = pos
        for n, chunk in enumerate(chunks):
            raw = pack_entry(chunk, 10 + n, guid, size, tail=first)
            f.pwrite(raw, header.log_offset + pos)
            pos += len(raw)
        update_headers(f, header, slot, log_guid=guid)


@pytest.mark.parametrize("entries", [1, 3])
def test_dirty_vhdx_is_replayed_like_qemu_does(tmp_path: Path, entries: int) -> None:
    path, model = make_dirty(tmp_path, entries)
    before = digest(path)
    assert inspect(path).log_pending is True
    report = check(path)
    assert [p.code for p in report.problems] == ["log_pending"] and not report.ok
    assert read_all(path) == model  # read-only: the log applied in memory ...
    assert digest(path) == before  # ... and the file untouched

    theirs = tmp_path / "theirs.vhdx"
    shutil.copy(path, theirs)
    qemu_img("check", "-q", "-r", "all", "-f", "vhdx", theirs)
    qemu_img("convert", "-f", "vhdx", "-O", "raw", theirs, tmp_path / "theirs.raw")
    assert (tmp_path / "theirs.raw").read_bytes() == model

    assert read_all(path, writable=True) == model  # replayed on a writable open
    assert inspect(path).log_pending is False and check(path).ok
    qemu_img("convert", "-f", "vhdx", "-O", "raw", path, tmp_path / "ours.raw")
    assert (tmp_path / "ours.raw").read_bytes() == model


def test_crash_at_any_point_of_the_replay_replays_again(tmp_path: Path) -> None:
    path, model = make_dirty(tmp_path)
    pristine = tmp_path / "pristine.vhdx"
    shutil.copy(path, pristine)
    with record_writes() as log:
        open_disk(path, writable=True).close()
    assert len(log) > 4
    for k in range(len(log) + 1):
        crashed = tmp_path / f"crash{k}.vhdx"
        shutil.copy(pristine, crashed)
        with open(crashed, "r+b") as f:
            for rec in log[:k]:
                if rec.data is None:
                    f.truncate(rec.offset)
                else:
                    f.seek(rec.offset)
                    f.write(rec.data)
        assert read_all(crashed) == model, f"read-only view after {k} writes"
        assert read_all(crashed, writable=True) == model, f"replay after {k} writes"
        assert check(crashed).ok
        crashed.unlink()


def test_replay_via_check_repair(tmp_path: Path) -> None:
    path, model = make_dirty(tmp_path)
    report = check(path, repair=True)
    assert report.repaired == ["replayed the pending log"] and report.remaining == []
    assert inspect(path).log_pending is False and read_all(path) == model


def test_a_pending_log_without_a_valid_entry_changes_nothing(tmp_path: Path) -> None:
    path, model = make_dirty(tmp_path)
    with open_disk(path) as disk:
        assert isinstance(disk, VhdxImage)
        log_at = disk.s.header.log_offset
    with open(path, "r+b") as f:  # tear every entry: none was ever complete
        for off in range(0, MiB, 4096):
            f.seek(log_at + off + 40)
            f.write(b"\xee")
    theirs = tmp_path / "theirs.vhdx"
    shutil.copy(path, theirs)
    qemu_img("check", "-q", "-r", "all", "-f", "vhdx", theirs)
    qemu_img("convert", "-f", "vhdx", "-O", "raw", theirs, tmp_path / "theirs.raw")
    oracle = (tmp_path / "theirs.raw").read_bytes()
    assert oracle != model  # the logged changes are lost, as QEMU sees it too
    assert [p.code for p in check(path).problems] == ["log_pending"]
    assert read_all(path) == oracle and read_all(path, writable=True) == oracle
    assert inspect(path).log_pending is False and check(path).ok


def test_log_needing_a_longer_file_is_refused_by_name(tmp_path: Path) -> None:
    path, _ = make_dirty(tmp_path)
    os.truncate(path, os.path.getsize(path) - MiB)  # the new block's data is gone
    before = digest(path)
    with pytest.raises(BadLog, match="the log needs"):
        open_disk(path, writable=True)
    assert digest(path) == before
    assert [p.code for p in check(path).problems] == ["log_invalid"]


@pytest.mark.parametrize("kind", ["dynamic", "fixed"])
def test_expand_goes_through_the_log_and_survives_a_crash_anywhere(
    tmp_path: Path, kind: str
) -> None:
    model = make_pattern(5 * MiB + 1536, seed=21, runs=4)
    path = tmp_path / "e.vhdx"
    convert(write_raw(tmp_path / "m.raw", model), path, kind, block_size=MiB)
    pristine = tmp_path / "pristine.vhdx"
    shutil.copy(path, pristine)
    with record_writes() as log:
        expand(path, 9 * MiB)
    grown = bytes(model) + bytes(9 * MiB - len(model))
    assert read_all(path) == grown and inspect(path).disk_type == kind and check(path).ok
    assert qemu_info(path, "vhdx")["virtual-size"] == 9 * MiB
    for k in range(len(log) + 1):
        crashed = tmp_path / f"crash{k}.vhdx"
        shutil.copy(pristine, crashed)
        with open(crashed, "r+b") as f:
            for rec in log[:k]:
                if rec.data is None:
                    f.truncate(rec.offset)
                else:
                    f.seek(rec.offset)
                    f.write(rec.data)
        seen = read_all(crashed, writable=True)  # replays a committed log entry, if any
        assert seen in (bytes(model), grown), f"after {k} of {len(log)} writes"
        assert check(crashed).ok
        crashed.unlink()


@pytest.mark.parametrize("differencing", [False, True])
def test_a_crash_during_writes_leaves_old_or_new_sectors(
    tmp_path: Path, differencing: bool
) -> None:
    from viridian.disks import new_differencing

    before = bytes(make_pattern(4 * MiB, seed=5, runs=3))
    base = tmp_path / "base.vhdx"
    convert(write_raw(tmp_path / "b.raw", before), base, "dynamic", block_size=MiB)
    path = base
    if differencing:
        path = tmp_path / "child.avhdx"
        new_differencing(path, base)
    pristine = tmp_path / "pristine"
    shutil.copy(path, pristine)
    with record_writes() as log, open_disk(path, writable=True) as disk:
        disk.write(MiB - 700, b"\x61" * 5000)  # crosses into block 1
        disk.write(3 * MiB + 512, b"\x62" * 4096)
        after = disk.read(0, disk.size)
    for k in range(len(log) + 1):
        crashed = tmp_path / path.name
        shutil.copy(pristine, crashed)
        with open(crashed, "r+b") as f:
            for rec in log[:k]:
                if rec.data is None:
                    f.truncate(rec.offset)
                else:
                    f.seek(rec.offset)
                    f.write(rec.data)
        seen = read_all(crashed)  # read-only: a pending log applied in memory
        for i in range(0, len(seen), 512):
            assert seen[i : i + 512] in (before[i : i + 512], after[i : i + 512]), (k, i)
        if not differencing:  # QEMU replays our log the same way (it refuses AVHDX)
            theirs = tmp_path / "qemu.vhdx"
            shutil.copy(crashed, theirs)
            qemu_img("check", "-q", "-r", "all", "-f", "vhdx", theirs)
            qemu_img("convert", "-f", "vhdx", "-O", "raw", theirs, tmp_path / "q.raw")
            assert (tmp_path / "q.raw").read_bytes() == seen, k
        assert read_all(crashed, writable=True) == seen, k  # our replay agrees
        assert check(crashed).ok, k


def test_replay_before_handing_the_disk_to_qemu(tmp_path: Path) -> None:
    path, model = make_dirty(tmp_path)
    refused = subprocess.run(
        ["qemu-img", "info", "-f", "vhdx", str(path)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "log" in refused.stderr  # QEMU read-only: refused
    assert replay_vhdx_log(path) is True
    assert replay_vhdx_log(path) is False  # nothing pending any more
    assert qemu_info(path, "vhdx")["virtual-size"] == SIZE
    assert read_all(path) == model
