"""Differencing chains: locators, unique ids, depth 3, merge and flattening."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viridian.disks import (
    InvalidDiskArgument,
    ParentLinkError,
    check,
    convert,
    inspect,
    merge,
    new_differencing,
    new_dynamic,
    open_disk,
)

from .helpers import MiB, make_pattern, qemu_same, vhdi_read, write_raw

SIZE = 12 * MiB + 512 * 5


def build_chain(folder: Path) -> tuple[list[Path], bytearray]:
    """base (dynamic) ← c1 ← c2 ← c3 with writes at each level; returns paths, final view."""
    model = make_pattern(SIZE, seed=21, runs=10)
    convert(write_raw(folder / "ref.raw", model), folder / "base.vhd", "dynamic")
    paths = [folder / "base.vhd"]
    for level, (off, n, byte) in enumerate(
        [(MiB + 100, 3 * MiB, 0x11), (2 * MiB + 7, 5000, 0x00), (5 * MiB, 4 * MiB + 3, 0x33)], 1
    ):
        child = folder / f"c{level}.vhd"
        new_differencing(child, paths[-1])
        with open_disk(child, writable=True) as disk:
            disk.write(off, bytes([byte]) * n)
            disk.write(SIZE - 700, b"end%d" % level)
        model[off : off + n] = bytes([byte]) * n
        model[SIZE - 700 : SIZE - 696] = b"end%d" % level
        paths.append(child)
    return paths, model


def test_depth_three_chain_reads_as_expected_here_and_in_libvhdi(tmp_path: Path) -> None:
    paths, model = build_chain(tmp_path)
    with open_disk(paths[-1]) as disk:
        assert [p.path.name for p in disk.chain()] == ["c3.vhd", "c2.vhd", "c1.vhd", "base.vhd"]
        assert disk.read(0, SIZE) == model
    assert vhdi_read(paths[-1], paths[-2::-1]) == (SIZE, bytes(model))
    info = inspect(paths[-1])
    assert info.disk_type == "differencing"
    assert [Path(i.path).name for i in info.chain] == ["c2.vhd", "c1.vhd", "base.vhd"]
    assert info.parent_unique_id == info.chain[0].unique_id
    assert all(check(p).ok for p in paths)


def test_convert_flattens_a_chain_to_every_type(tmp_path: Path) -> None:
    paths, model = build_chain(tmp_path)
    final = write_raw(tmp_path / "final.raw", model)
    for kind in ("raw", "fixed", "dynamic"):
        out = tmp_path / f"flat-{kind}.img"
        convert(paths[-1], out, kind)
        assert qemu_same(final, out, "raw" if kind == "raw" else "vpc")
        assert inspect(out).disk_type == kind


def test_merge_into_new_output_leaves_the_chain_alone(tmp_path: Path) -> None:
    paths, model = build_chain(tmp_path)
    out = merge(paths[-1], output=tmp_path / "merged.vhd")
    with open_disk(out) as disk:
        assert disk.disk_type == "dynamic" and disk.read(0, SIZE) == model
    assert paths[-1].exists()


def test_merge_into_parent_step_by_step_keeps_the_view(tmp_path: Path) -> None:
    paths, model = build_chain(tmp_path)
    for child in reversed(paths[1:]):
        parent = merge(child, into_parent=True)
        assert not child.exists()
        with open_disk(parent) as disk:
            assert disk.read(0, SIZE) == model
    assert qemu_same(write_raw(tmp_path / "final.raw", model), paths[0])
    assert vhdi_read(paths[0]) == (SIZE, bytes(model))


def test_relative_locator_survives_moving_the_whole_chain(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _, model = build_chain(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    with open_disk(tmp_path / "b" / "c3.vhd") as disk:
        assert disk.chain()[-1].path.parent.name == "b"
        assert disk.read(0, SIZE) == model


def test_absolute_locator_finds_a_parent_in_another_folder(tmp_path: Path) -> None:
    (tmp_path / "parents").mkdir()
    (tmp_path / "kids").mkdir()
    new_dynamic(tmp_path / "parents" / "p.vhd", 4 * MiB)
    new_differencing(tmp_path / "kids" / "c.vhd", tmp_path / "parents" / "p.vhd")
    (tmp_path / "deeper").mkdir()
    shutil.move(tmp_path / "kids", tmp_path / "deeper" / "kids")  # ..\\parents now misses
    with open_disk(tmp_path / "deeper" / "kids" / "c.vhd") as disk:
        assert disk.chain()[1].path == tmp_path / "parents" / "p.vhd"


def test_a_different_parent_with_the_same_name_is_refused(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "p.vhd", 4 * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    (tmp_path / "p.vhd").unlink()
    new_dynamic(tmp_path / "p.vhd", 4 * MiB)
    with pytest.raises(ParentLinkError, match="unique id differs"):
        open_disk(tmp_path / "c.vhd")
    info = inspect(tmp_path / "c.vhd")
    assert info.parent_error and "not found" in info.parent_error
    report = check(tmp_path / "c.vhd")
    assert [p.code for p in report.problems] == ["parent_link"] and not report.ok


def test_missing_parent_names_the_places_tried(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "p.vhd", 4 * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    (tmp_path / "p.vhd").unlink()
    with pytest.raises(ParentLinkError, match=r"p\.vhd \(missing\)"):
        open_disk(tmp_path / "c.vhd")


def test_a_parent_loop_is_a_named_error(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "p.vhd", 4 * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    new_differencing(tmp_path / "loop.vhd", tmp_path / "c.vhd")
    (tmp_path / "loop.vhd").rename(tmp_path / "p.vhd")
    with pytest.raises(ParentLinkError, match="loops back"):
        open_disk(tmp_path / "c.vhd")


def test_merge_refuses_a_disk_that_is_not_differencing(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "d.vhd", 4 * MiB)
    with pytest.raises(InvalidDiskArgument, match="differencing"):
        merge(tmp_path / "d.vhd", into_parent=True)
    with pytest.raises(InvalidDiskArgument, match="exactly one"):
        merge(tmp_path / "d.vhd")
