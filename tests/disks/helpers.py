"""Helpers for the disk tests: reference images and the external oracles."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from pathlib import Path

MiB = 1024 * 1024


def make_pattern(size: int, seed: int, runs: int = 24) -> bytearray:
    """A sparse pattern: random runs of random bytes (some crossing blocks), rest zeros."""
    rnd = random.Random(seed)
    buf = bytearray(size)
    for _ in range(runs):
        n = rnd.randrange(1, min(size, 3 * MiB))
        off = rnd.randrange(0, size - n + 1)
        buf[off : off + n] = rnd.randbytes(n)
    return buf


def write_raw(path: Path, data: bytes | bytearray) -> Path:
    """Write ``data`` as a sparse raw file (zero MiB chunks become holes)."""
    with open(path, "wb") as f:
        f.truncate(len(data))
        for off in range(0, len(data), MiB):
            chunk = data[off : off + MiB]
            if any(chunk):
                f.seek(off)
                f.write(chunk)
    return path


def qemu_img(*args: str | Path) -> str:
    """Run qemu-img; returns stdout, raises with stderr on failure."""
    res = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, f"qemu-img {args} failed: {res.stderr}"
    return res.stdout


def qemu_info(path: Path, fmt: str = "vpc") -> dict[str, object]:
    """``qemu-img info --output=json`` with an explicit format."""
    return dict(json.loads(qemu_img("info", "--output=json", "-f", fmt, path)))


def qemu_same(raw: Path, image: Path, fmt: str = "vpc") -> bool:
    """True when QEMU reads ``image`` identical to the raw reference."""
    res = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", fmt, str(raw), str(image)],
        capture_output=True,
        text=True,
    )
    return res.returncode == 0


def vhdi_read(path: Path, parents: list[Path] | None = None) -> tuple[int, bytes]:
    """(media size, all bytes) as libvhdi reads ``path``, with an explicit parent chain."""
    import pyvhdi

    files = []
    for p in [path, *(parents or [])]:
        f = pyvhdi.file()
        f.open(str(p))
        files.append(f)
    for child, parent in itertools.pairwise(files):
        child.set_parent(parent)
    size = files[0].get_media_size()
    data = files[0].read_buffer_at_offset(size, 0)
    for f in files:
        f.close()
    return size, data


def sparse_fixed_vhd(path: Path, size: int) -> Path:
    """A fixed VHD of ``size`` bytes laid out exactly as ``new_fixed`` does, but sparse.

    ``new_fixed`` allocates up front (and refuses sizes beyond the free space); this
    builds the same bytes without allocating, for size-limit tests of huge disks.
    """
    from viridian.disks.create import make_footer
    from viridian.disks.vhd_layout import DISK_FIXED

    with open(path, "xb") as f:
        f.truncate(size)
        f.seek(size)
        f.write(make_footer(DISK_FIXED, size).pack())
    return path
