"""Benchmark viridian.disks against qemu-img and a plain sparse-aware copy.

Usage: python bench/bench_disks.py [--quick] [--dir DIR] [--repeat N] [--only cli|lib]
       [--cli-size-mib N ...]

Part 1 (cli): ``viridian disk convert`` run as a user runs it — a subprocess, the whole
command from interpreter start to the synced output — against ``qemu-img convert`` on the
same data in the same run (qemu-img's output is fsynced after it exits, as ours is
before), for a 256 MiB and a 2 GiB half-full image (64 MiB with --quick): raw -> dynamic
VHD and dynamic VHD -> raw, plus the same with VHDX when ``viridian disk new x.vhdx``
works. Rounds are interleaved (ours, qemu-img, ours, ...); medians and ratios are
printed. Goal: ratio <= 1.0.

Part 2 (lib): on a raw image with ~50 % data in scattered 1 MiB runs (2 GiB, or 64 MiB
with --quick): raw→dynamic, raw→fixed, dynamic→raw, compact, and merge of a differencing
disk holding 25 % of the blocks. Every contender ends with its output fsynced; page cache is warm;
contenders run interleaved (ours, qemu-img, floor, ours, ...) and the best of N is kept.
The "floor" is a SEEK_DATA/SEEK_HOLE + copy_file_range copy of the same data bytes.
Targets: ours <= qemu-img, and ours <= 1.5 x floor. Not a test: prints tables.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from viridian.disks import compact, convert, merge, new_differencing, open_disk

MiB = 1024 * 1024
GiB = 1024 * MiB


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
        def remove() -> None:
            for n in names:
                self.out(n)

        return remove

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

        def ours_compact() -> None:
            compact(work)

        ours = (prep, ours_compact)
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

        def ours_merge() -> None:
            merge(mc, into_parent=True)

        ours = (prep, ours_merge)
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


VIRIDIAN = Path(sys.executable).with_name("viridian")


@dataclass
class CliRow:
    """Median whole-command times in seconds of one conversion."""

    name: str
    ours: float
    qemu: float


def user_env(work: Path) -> dict[str, str]:
    """The environment of an installed user's CLI: bytecode compiled once and reused.

    A checkout run with PYTHONDONTWRITEBYTECODE recompiles every module on every run
    (~0.1 s); the cache goes to the work folder, so the source tree stays clean.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    subprocess.run([str(VIRIDIAN), "disk", "convert", "--help"], env=env, capture_output=True)
    return env


def timed(argv: list[str], out: Path, *, fsync_after: bool, env: dict[str, str]) -> float:
    """Wall time of running ``argv`` (plus an fsync of ``out`` when asked); raises on failure."""
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr}")
    if fsync_after:
        fsync_path(out)
    return time.perf_counter() - t0


def cli_race(
    name: str, ours: list[str], qemu: list[str], out: Path, repeat: int, env: dict[str, str]
) -> CliRow:
    """Median of ``repeat`` interleaved runs of our CLI and qemu-img writing ``out``."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for argv, bucket, sync in ((ours, times[0], False), (qemu, times[1], True)):
            out.unlink(missing_ok=True)
            os.sync()
            bucket.append(timed(argv, out, fsync_after=sync, env=env))
    out.unlink(missing_ok=True)
    return CliRow(name, statistics.median(times[0]), statistics.median(times[1]))


def vhdx_writable(work: Path) -> bool:
    """True when this viridian can create a VHDX (``disk new x.vhdx``)."""
    probe = work / "probe.vhdx"
    res = subprocess.run([str(VIRIDIAN), "disk", "new", str(probe), "--size", "1MB"],
                         capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip
    probe.unlink(missing_ok=True)
    return res.returncode == 0


def cli_rows(work: Path, size: int, repeat: int, vhdx: bool) -> list[CliRow]:
    """raw -> dynamic VHD and VHD -> raw (and VHDX both ways) for one image size."""
    label = f"cli {size // MiB} MiB"
    raw, vhd, out = work / "cli.raw", work / "cli.vhd", work / "cli.out"
    make_raw(raw, size, 0.5, seed=4)
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
             raw, vhd)  # fmt: skip
    v, q = [str(VIRIDIAN), "disk", "convert"], ["qemu-img", "convert"]
    cases = [
        ("raw -> vhd", [*v, str(raw), str(out) + ".vhd", "--type", "dynamic"],
         [*q, "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", str(raw)]),
        ("vhd -> raw", [*v, str(vhd), str(out) + ".raw", "--type", "raw"],
         [*q, "-f", "vpc", "-O", "raw", str(vhd)]),
    ]  # fmt: skip
    if vhdx:
        vx = work / "cli.vhdx"
        qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, vx)
        cases += [
            ("raw -> vhdx", [*v, str(raw), str(out) + ".vhdx", "--type", "dynamic"],
             [*q, "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", str(raw)]),
            ("vhdx -> raw", [*v, str(vx), str(out) + ".raw", "--type", "raw"],
             [*q, "-f", "vhdx", "-O", "raw", str(vx)]),
        ]  # fmt: skip
    rows, env = [], user_env(work)
    for name, ours, qemu in cases:
        dst = Path(ours[4])
        rows.append(cli_race(f"{label} {name}", ours, [*qemu, str(dst)], dst, repeat, env))
    for path in (raw, vhd, work / "cli.vhdx"):
        path.unlink(missing_ok=True)
    return rows


def cli_table(rows: list[CliRow]) -> str:
    lines = [f"{'disk convert (whole command)':<30}{'viridian s':>11}{'qemu-img s':>12}"
             f"{'ours/qemu':>11}"]  # fmt: skip
    for r in rows:
        lines.append(f"{r.name:<30}{r.ours:11.3f}{r.qemu:12.3f}{r.ours / r.qemu:11.2f}")
    return "\n".join(lines)


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
    ap.add_argument("--quick", action="store_true", help="64 MiB images (smoke test)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per contender")
    ap.add_argument("--only", choices=("cli", "lib"), default=None, help="run one part")
    ap.add_argument("--cli-size-mib", type=int, action="append", default=None,
                    help="image size of part 1 (repeatable; default 256 and 2048)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-disks-", dir=args.dir))
    try:
        if args.only != "lib":
            run_cli(work, args.quick, args.repeat, args.cli_size_mib)
        if args.only != "cli":
            run_lib(work, args.quick, args.repeat)
    finally:
        shutil.rmtree(work)
    return 0


def run_cli(work: Path, quick: bool, repeat: int | None,
            sizes_mib: list[int] | None = None) -> None:
    """Part 1: the CLI against qemu-img, medians and ratios printed."""
    sizes = [64 * MiB] if quick else [n * MiB for n in sizes_mib or (256, 2048)]
    vhdx = vhdx_writable(work)
    rows: list[CliRow] = []
    for size in sizes:
        rows += cli_rows(work, size, repeat or (1 if quick else 5 if size < GiB else 3), vhdx)
    print(f"~50% data in 1 MiB runs; median of interleaved runs; vhdx {'on' if vhdx else 'off'}")
    print(cli_table(rows))


def run_lib(work: Path, quick: bool, repeat: int | None) -> None:
    """Part 2: library calls against qemu-img and the copy floor, best of N."""
    size = 64 * MiB if quick else 2048 * MiB
    repeat = repeat or (1 if quick else 3)
    bench = Bench(work, size, repeat)
    rows = [*bench.conversions(), bench.compact_row(), bench.merge_row()]
    print(f"image {size // MiB} MiB, ~50% data in 1 MiB runs; best of {repeat}")
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
