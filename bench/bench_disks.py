"""Benchmark viridian.disks against qemu-img and a plain sparse-aware copy.

Usage: python bench/bench_disks.py [--quick] [--dir DIR] [--repeat N]

On a raw image with ~50 % data in scattered 1 MiB runs (2 GiB, or 64 MiB with --quick):
raw→dynamic, raw→fixed, dynamic→raw, compact, and merge of a differencing disk holding
25 % of the blocks. Every contender ends with its output fsynced; page cache is warm;
contenders run interleaved (ours, qemu-img, floor, ours, ...) and the best of N is kept.
The "floor" is a SEEK_DATA/SEEK_HOLE + copy_file_range copy of the same data bytes.
Targets: ours <= qemu-img, and ours <= 1.5 x floor. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from viridian.disks import compact, convert, merge, new_differencing, open_disk

MiB = 1024 * 1024


@dataclass
class Row:
    """One operation's best wall times in seconds."""

    name: str
    ours: float
    qemu: float
    floor: float


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sparse_copy(src: Path, dst: Path) -> None:
    """The floor: copy only the data extents of ``src`` (kernel copy), then fsync."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        fo.truncate(size)
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fi.fileno(), start, os.SEEK_HOLE)
            off = start
            while off < stop:
                off += os.copy_file_range(fi.fileno(), fo.fileno(), stop - off, off, off)
            pos = stop
        os.fsync(fo.fileno())


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


Contender = tuple[Callable[[], None], Callable[[], None]]  # (prepare, action)


def race(name: str, ours: Contender, qemu: Contender, floor: Contender, repeat: int) -> Row:
    """Best time of each contender over ``repeat`` interleaved rounds (fair to noise)."""
    best = [float("inf")] * 3
    for _ in range(repeat):
        for i, (prepare, action) in enumerate((ours, qemu, floor)):
            prepare()
            os.sync()  # start every contender with no dirty pages of anyone else's
            t0 = time.perf_counter()
            action()
            best[i] = min(best[i], time.perf_counter() - t0)
    return Row(name, *best)


def make_raw(path: Path, size: int, fraction: float, seed: int) -> list[int]:
    """Fill ``fraction`` of the 1 MiB slots of a sparse raw file with random data."""
    rnd = random.Random(seed)
    slots = sorted(rnd.sample(range(size // MiB), int(size // MiB * fraction)))
    with open(path, "wb") as f:
        f.truncate(size)
        for s in slots:
            f.seek(s * MiB)
            f.write(rnd.randbytes(MiB))
    return slots


class Bench:
    """Inputs in one work folder, and one method per measured operation."""

    def __init__(self, work: Path, size: int, repeat: int):
        self.w, self.size, self.repeat = work, size, repeat
        self.raw = work / "src.raw"
        make_raw(self.raw, size, 0.5, seed=1)
        convert(self.raw, work / "src.vhd", "dynamic")

    def out(self, name: str) -> Path:
        path = self.w / name
        if path.exists():
            path.unlink()
        return path

    def clean(self, *names: str) -> Callable[[], None]:
        return lambda: [self.out(n) for n in names] and None

    def floor(self, raw: Path) -> Contender:
        return self.clean("floor.raw"), lambda: sparse_copy(raw, self.w / "floor.raw")

    def qemu_convert(self, src: Path, fmt: str, out: str, *opts: str) -> Contender:
        def act() -> None:
            qemu_img("convert", "-f", fmt, *opts, src, self.w / out)
            fsync_path(self.w / out)

        return self.clean(out), act

    def ours_convert(self, src: Path, out: str, kind: str) -> Contender:
        return self.clean(out), lambda: convert(src, self.w / out, kind)

    def conversions(self) -> list[Row]:
        vpc = "subformat=dynamic,force_size=on"
        fix = "subformat=fixed,force_size=on"
        floor, src, n = self.floor(self.raw), self.w / "src.vhd", self.repeat
        return [
            race("raw -> dynamic", self.ours_convert(self.raw, "o.vhd", "dynamic"),
                 self.qemu_convert(self.raw, "raw", "q.vhd", "-O", "vpc", "-o", vpc), floor, n),
            race("raw -> fixed", self.ours_convert(self.raw, "o.vhd", "fixed"),
                 self.qemu_convert(self.raw, "raw", "q.vhd", "-O", "vpc", "-o", fix), floor, n),
            race("dynamic -> raw", self.ours_convert(src, "o.raw", "raw"),
                 self.qemu_convert(src, "vpc", "q.raw", "-O", "raw"), floor, n),
        ]  # fmt: skip

    def compact_row(self) -> Row:
        """Compact a dynamic disk whose data blocks are 25 % zero-filled (but allocated)."""
        holey = self.w / "holey.vhd"
        shutil.copy(self.w / "src.vhd", holey)
        rnd = random.Random(2)
        with open_disk(holey, writable=True) as disk:
            runs = list(disk.data_runs())
            for start, stop in rnd.sample(runs, len(runs) // 4):
                disk.write(start, bytes(stop - start))
        convert(holey, self.out("holey-content.raw"), "raw")
        work = self.w / "compact.vhd"

        def prep() -> None:
            self.out("compact.vhd")
            shutil.copy(holey, work)

        def qemu() -> None:
            opts = "subformat=dynamic,force_size=on"
            qemu_img("convert", "-f", "vpc", "-O", "vpc", "-o", opts, holey, self.w / "qc.vhd")
            fsync_path(self.w / "qc.vhd")

        ours = (prep, lambda: compact(work) and None)
        floor = self.floor(self.w / "holey-content.raw")
        return race("compact", ours, (self.clean("qc.vhd"), qemu), floor, self.repeat)

    def merge_row(self) -> Row:
        """Merge a child holding 25 % of the blocks (random data) into its dynamic parent."""
        base, child = self.w / "base.vhd", self.w / "child.vhd"
        blocks = self.size // (2 * MiB)
        rnd = random.Random(3)
        chosen = sorted(rnd.sample(range(blocks), blocks // 4))
        child_raw = self.w / "child-content.raw"
        with open(child_raw, "wb") as f:
            f.truncate(self.size)
            for b in chosen:
                f.seek(b * 2 * MiB)
                f.write(rnd.randbytes(2 * MiB))
        shutil.copy(self.w / "src.vhd", base)
        new_differencing(child, base)
        with open_disk(child, writable=True) as c, open_disk(child_raw) as r:
            for b in chosen:
                c.write(b * 2 * MiB, r.read(b * 2 * MiB, 2 * MiB))
        pristine_base, pristine_child = self.w / "base.orig", self.w / "child.orig"
        shutil.copy(base, pristine_base)
        shutil.copy(child, pristine_child)
        mb, mc = self.w / "m" / "base.vhd", self.w / "m" / "child.vhd"
        (self.w / "m").mkdir(exist_ok=True)

        def prep() -> None:
            shutil.copy(pristine_base, mb)
            shutil.copy(pristine_child, mc)

        ours = (prep, lambda: merge(mc, into_parent=True) and None)
        qb, qo = self.w / "q" / "base.vhd", self.w / "q" / "overlay.qcow2"
        (self.w / "q").mkdir(exist_ok=True)
        writes = [a for b in chosen for a in ("-c", f"write -P {b % 250 + 1} {b * 2 * MiB} 2M")]

        def qprep() -> None:
            shutil.copy(pristine_base, qb)
            qo.unlink(missing_ok=True)
            qemu_img("create", "-q", "-f", "qcow2", "-b", qb, "-F", "vpc", qo)
            subprocess.run(["qemu-io", "-f", "qcow2", *writes, str(qo)], check=True,
                           capture_output=True)  # fmt: skip

        def qemu() -> None:
            qemu_img("commit", "-f", "qcow2", qo)
            fsync_path(qb)

        floor = self.floor(child_raw)
        return race("merge (25% child)", ours, (qprep, qemu), floor, self.repeat)


def table(rows: list[Row]) -> str:
    lines = [f"{'operation':<20}{'ours s':>9}{'qemu-img s':>12}{'floor s':>9}"
             f"{'ours/qemu':>11}{'ours/floor':>12}"]  # fmt: skip
    for r in rows:
        lines.append(
            f"{r.name:<20}{r.ours:9.3f}{r.qemu:12.3f}{r.floor:9.3f}"
            f"{r.ours / r.qemu:11.2f}{r.ours / r.floor:12.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="64 MiB image (smoke test)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per contender (best kept)")
    args = ap.parse_args(argv)
    size = 64 * MiB if args.quick else 2048 * MiB
    repeat = args.repeat or (1 if args.quick else 3)
    work = Path(tempfile.mkdtemp(prefix="bench-disks-", dir=args.dir))
    try:
        bench = Bench(work, size, repeat)
        rows = [*bench.conversions(), bench.compact_row(), bench.merge_row()]
    finally:
        shutil.rmtree(work)
    print(f"image {size // MiB} MiB, ~50% data in 1 MiB runs; best of {repeat}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
