"""Images made by Hyper-V, Virtual PC, disk2vhd and a dirty-log VHDX (QEMU's iotest
samples, tests/disks/data/README.md): we read each equal to qemu-img."""

from __future__ import annotations

import bz2
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from viridian.disks import convert, inspect, replay_vhdx_log

from .helpers import MiB, qemu_img, qemu_same

DATA = Path(__file__).parent / "data"
CLEAN = [
    ("hyperv2012r2-dynamic.vhd", "vpc", "win "),
    ("virtualpc-dynamic.vhd", "vpc", "vpc "),
    ("d2v-zerofilled.vhd", "vpc", "d2v"),
    ("iotest-dynamic-1G.vhdx", "vhdx", "Microsoft Windows 6.2.9200.16384"),
    ("test-disk2vhd.vhdx", "vhdx", "d2v"),
]
DIRTY = "iotest-dirtylog-10G-4M.vhdx"


def unpack(name: str, folder: Path) -> Path:
    """Decompress ``name``.bz2 into ``folder``, all-zero MiB chunks left as holes."""
    out = folder / name
    with bz2.open(DATA / f"{name}.bz2") as src, open(out, "wb") as dst:
        while chunk := src.read(MiB):
            if chunk.count(0) == len(chunk):
                dst.seek(len(chunk), 1)
            else:
                dst.write(chunk)
        dst.truncate()
    return out


@pytest.mark.parametrize(("name", "fmt", "creator"), CLEAN, ids=[c[0] for c in CLEAN])
def test_we_read_other_producers_images_as_qemu_does(tmp_path: Path, name: str, fmt: str,
                                                     creator: str) -> None:  # fmt: skip
    image = unpack(name, tmp_path)
    info = inspect(image)
    assert info.format == fmt and info.creator_application == creator
    assert info.virtual_size == qemu_info_size(image, fmt)
    ours = tmp_path / "ours.raw"
    convert(image, ours, "raw")
    assert qemu_same(ours, image, fmt)


def qemu_info_size(image: Path, fmt: str) -> int:
    return int(json.loads(qemu_img("info", "--output=json", "-f", fmt, image))["virtual-size"])


def test_dirty_log_vhdx_reads_replayed_and_replays_like_qemu(tmp_path: Path) -> None:
    image = unpack(DIRTY, tmp_path)
    theirs = tmp_path / "qemu.vhdx"
    shutil.copy(image, theirs)
    # QEMU refuses the dirty image read-only; its repair replays the log.
    ro = subprocess.run(["qemu-img", "info", "-f", "vhdx", str(theirs)], capture_output=True,
                        text=True)  # fmt: skip
    assert ro.returncode != 0 and "log that needs to be replayed" in ro.stderr
    qemu_img("check", "-r", "all", "-f", "vhdx", theirs)
    ours = tmp_path / "ours.raw"
    convert(image, ours, "raw")  # read-only open: the log applied in memory, file untouched
    assert replay_vhdx_log(image) is True and replay_vhdx_log(image) is False
    assert qemu_same(ours, theirs, "vhdx")
    assert qemu_same(ours, image, "vhdx")  # our replay opens read-only in QEMU now
