"""Fixed VHDs are allocated up front, or refused with needed vs free (issue 13 #4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viridian.disks import NoSpace, convert, new_dynamic, new_fixed
from viridian.disks.vhd_layout import MAX_VIRTUAL_SIZE

from .helpers import MiB, make_pattern, qemu_same, write_raw
from .test_cli import run


def allocated(path: Path) -> int:
    """Bytes the file really occupies on the host file system."""
    return path.stat().st_blocks * 512


def free_space(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


@pytest.fixture
def short_of_space(tmp_path: Path) -> int:
    """A virtual size (the VHD maximum) that does not fit on tmp_path's file system."""
    if free_space(tmp_path) >= MAX_VIRTUAL_SIZE + 512:
        pytest.skip("the test file system has more than 2040 GiB free")
    return MAX_VIRTUAL_SIZE


def test_new_fixed_disk_occupies_its_whole_size(tmp_path: Path) -> None:
    out, _ = run("new", tmp_path / "f.vhd", "--size", "64MB", "--type", "fixed")
    assert "created fixed disk" in out and "(64 MB)" in out
    assert allocated(tmp_path / "f.vhd") >= 64 * MiB + 512
    assert run("check", tmp_path / "f.vhd")[0].strip() == "no errors found"


def test_convert_and_expand_to_fixed_are_allocated(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "ref.raw", make_pattern(16 * MiB, seed=4, runs=2))
    assert allocated(raw) < 16 * MiB  # a sparse source
    run("convert", raw, tmp_path / "f.vhd", "--type", "fixed")
    assert allocated(tmp_path / "f.vhd") >= 16 * MiB + 512
    assert qemu_same(raw, tmp_path / "f.vhd")
    run("expand", tmp_path / "f.vhd", "--size", "40MB")
    assert allocated(tmp_path / "f.vhd") >= 40 * MiB + 512
    assert run("check", tmp_path / "f.vhd")[0].strip() == "no errors found"


def test_fixed_disk_larger_than_free_space_is_refused_with_the_numbers(
    tmp_path: Path, short_of_space: int
) -> None:
    path = tmp_path / "big.vhd"
    _, err = run("new", path, "--size", "2040GB", "--type", "fixed", code=4)
    assert f"needs {short_of_space + 512:,} bytes" in err and "GiB) free" in err
    assert "nothing was created" in err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NoSpace) as caught:
        new_fixed(path, short_of_space)
    assert caught.value.needed == short_of_space + 512
    assert 0 <= caught.value.free < caught.value.needed
    assert not path.exists()


def test_convert_to_fixed_without_space_leaves_no_file(tmp_path: Path, short_of_space: int) -> None:
    new_dynamic(tmp_path / "huge.vhd", short_of_space)
    _, err = run("convert", tmp_path / "huge.vhd", tmp_path / "f.vhd", "--type", "fixed", code=4)
    assert "f.vhd: a fixed disk needs" in err and "nothing was created" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.vhd"]
    with pytest.raises(NoSpace):
        convert(tmp_path / "huge.vhd", tmp_path / "f.vhd", "fixed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.vhd"]


def test_expand_fixed_without_space_changes_nothing(tmp_path: Path, short_of_space: int) -> None:
    path = tmp_path / "f.vhd"
    new_fixed(path, MiB)
    before = path.read_bytes()
    _, err = run("expand", path, "--size", "2040GB", code=4)
    assert "nothing was changed" in err
    assert path.read_bytes() == before
