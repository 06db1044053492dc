"""Property-based fuzzing: mutated images give a named DiskError, never a crash or hang."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viridian.disks import (
    BadBlockTable,
    BadDynamicHeader,
    BadFooter,
    DiskError,
    ParentLinkError,
    check,
    convert,
    inspect,
    new_differencing,
    open_disk,
)
from viridian.disks.vhd_layout import vhd_checksum

from .helpers import MiB, make_pattern, write_raw


@dataclass(frozen=True)
class Seeds:
    """Valid images to mutate, and the folder holding them (the child's parent too)."""

    folder: Path
    images: dict[str, bytes]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    folder = tmp_path_factory.mktemp("seeds")
    raw = write_raw(folder / "ref.raw", make_pattern(3 * MiB, seed=2, runs=4))
    convert(raw, folder / "dyn.vhd", "dynamic", block_size=512 * 1024)
    convert(raw, folder / "fixed.vhd", "fixed")
    new_differencing(folder / "child.vhd", folder / "dyn.vhd")
    with open_disk(folder / "child.vhd", writable=True) as c:
        c.write(700_000, b"\x55" * 5000)
    names = ("dyn.vhd", "fixed.vhd", "child.vhd")
    return Seeds(folder, {name: (folder / name).read_bytes() for name in names})


def mutate(draw: st.DrawFn, seeds: Seeds) -> tuple[str, bytes]:
    """A seed image with 1-6 small overwrites (mostly in metadata), maybe truncated."""
    name = draw(st.sampled_from(sorted(seeds.images)))
    data = bytearray(seeds.images[name])
    hot = [0, 512, 1536, len(data) - 512]  # footer copy, header, BAT, footer
    for _ in range(draw(st.integers(1, 6))):
        base = draw(st.sampled_from(hot))
        off = draw(st.integers(0, 1023)) + base if draw(st.booleans()) else None
        off = draw(st.integers(0, len(data) - 1)) if off is None else min(off, len(data) - 1)
        width = draw(st.sampled_from([1, 4, 8]))
        data[off : off + width] = draw(st.binary(min_size=width, max_size=width))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return name, bytes(data)


def _exercise(path: Path) -> None:
    try:
        with open_disk(path) as disk:
            disk.read(0, min(disk.size, 2 * MiB))
            disk.read(max(0, disk.size - 4096), min(disk.size, 4096))
            for _ in zip(range(64), disk.data_runs(), strict=False):
                pass
    except DiskError:
        pass
    for probe in (inspect, check):
        with contextlib.suppress(DiskError):
            probe(path)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_images_raise_only_named_disk_errors(seeds: Seeds, data: st.DataObject) -> None:
    name, image = mutate(data.draw, seeds)
    work = Path(tempfile.mkdtemp(prefix="vhd-fuzz-"))
    try:
        shutil.copy(seeds.folder / "dyn.vhd", work / "dyn.vhd")  # the child's parent
        (work / name).write_bytes(image)
        _exercise(work / name)
    finally:
        shutil.rmtree(work)


def _patched(
    seeds: Seeds, tmp: Path, name: str, edits: dict[int, bytes], fix_footer: bool = True
) -> Path:
    """A copy of a seed with bytes replaced (footer copies re-checksummed if asked)."""
    data = bytearray(seeds.images[name])
    for off, raw in edits.items():
        data[off % len(data) : off % len(data) + len(raw)] = raw
    if fix_footer:
        for base in {0, len(data) - 512} if data[:8] == b"conectix" else {len(data) - 512}:
            foot = bytes(data[base : base + 512])
            data[base + 64 : base + 68] = vhd_checksum(foot, 64).to_bytes(4, "big")
    path = tmp / name
    path.write_bytes(data)
    if name == "child.vhd":
        shutil.copy(seeds.folder / "dyn.vhd", tmp / "dyn.vhd")
    return path


@pytest.mark.parametrize(
    ("name", "edits", "error", "text"),
    [
        ("dyn.vhd", {-512: b"notavhd!", 0: b"notavhd!"}, DiskError, "raw"),
        ("fixed.vhd", {-512 + 48: (1 << 60).to_bytes(8, "big")}, BadFooter, "2040 GiB"),
        ("dyn.vhd", {-512 + 48: (2040 << 30).to_bytes(8, "big"),
                     48: (2040 << 30).to_bytes(8, "big")}, BadBlockTable, "entries"),
        ("dyn.vhd", {512 + 28: (1 << 30).to_bytes(4, "big")}, BadDynamicHeader, "checksum"),
        ("dyn.vhd", {-512 + 16: (1 << 40).to_bytes(8, "big"),
                     16: (1 << 40).to_bytes(8, "big")}, BadDynamicHeader, "outside"),
        ("child.vhd", {512 + 40: bytes(16)}, BadDynamicHeader, "checksum"),
    ],
)  # fmt: skip
def test_malformed_fields_get_named_errors(
    seeds: Seeds,
    tmp_path: Path,
    name: str,
    edits: dict[int, bytes],
    error: type[Exception],
    text: str,
) -> None:
    path = _patched(seeds, tmp_path, name, edits)
    with pytest.raises(error, match=text), open_disk(path, raw_ok=False) as disk:
        disk.read(0, disk.size)


def test_truncated_and_bat_outside_file_get_named_errors(seeds: Seeds, tmp_path: Path) -> None:
    path = tmp_path / "dyn.vhd"
    path.write_bytes(seeds.images["dyn.vhd"][:600_000])
    with pytest.raises(BadBlockTable, match="past the end of the file"):
        open_disk(path)
    path.write_bytes(seeds.images["fixed.vhd"][-512:])
    with pytest.raises(BadFooter, match="truncated"):
        open_disk(path)


def test_a_parent_link_through_a_damaged_locator_is_a_named_error(
    seeds: Seeds, tmp_path: Path
) -> None:
    path = _patched(seeds, tmp_path, "child.vhd", {2048: b"\xd8\x00" * 600}, fix_footer=False)
    os.unlink(tmp_path / "dyn.vhd")  # only the (now garbled) locators could find it
    with pytest.raises(ParentLinkError, match="not found"):
        open_disk(path)
