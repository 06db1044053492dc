"""QEMU (qemu-img, qemu-io) and libvhdi as oracles for what we write and read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from viridian.disks import convert, detect_format, inspect, new_dynamic, new_fixed, open_disk
from viridian.disks.vhd_layout import MAX_VIRTUAL_SIZE

from .helpers import (
    MiB,
    make_pattern,
    qemu_img,
    qemu_info,
    qemu_same,
    sparse_fixed_vhd,
    vhdi_read,
    write_raw,
)

GiB = 1024 * MiB
SIZES = [
    MiB,
    104_865_792,  # CHS-exact (what qemu-img makes of 100M)
    100 * MiB,  # not CHS-representable: needs creator "win " to be honoured
    7 * MiB + 3 * 512,  # odd, not block aligned
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_our_images_read_identical_in_qemu_and_libvhdi(
    tmp_path: Path, size: int, kind: str
) -> None:
    model = make_pattern(size, seed=size % 1000, runs=8)
    raw = write_raw(tmp_path / "ref.raw", model)
    out = tmp_path / f"out-{kind}.vhd"
    convert(raw, out, kind)
    assert qemu_info(out)["virtual-size"] == size
    assert qemu_same(raw, out)
    assert vhdi_read(out) == (size, bytes(model))
    assert detect_format(out) == "vpc"


@pytest.mark.parametrize(
    "size",
    [136_899_993_600 + 512, 1536 * GiB, MAX_VIRTUAL_SIZE],
    ids=["127.5G+1s", "1.5T", "2040G"],
)
def test_huge_sparse_disks_have_the_exact_size_everywhere(tmp_path: Path, size: int) -> None:
    dyn, fixed = tmp_path / "big.vhd", tmp_path / "bigf.vhd"
    new_dynamic(dyn, size)
    sparse_fixed_vhd(fixed, size)  # new_fixed allocates: more than the host has free
    for path in (dyn, fixed):
        with open_disk(path, writable=True) as disk:
            disk.write(size - 4096, b"\xab" * 4096)
            disk.write(0, b"\xcd" * 512)
        assert qemu_info(path)["virtual-size"] == size
        io = subprocess.run(
            ["qemu-io", "-f", "vpc", "-c", f"read -P 0xab {size - 4096} 4096",
             "-c", "read -P 0xcd 0 512", "-c", "read -P 0 512 1M", str(path)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert io.returncode == 0 and "Pattern verification failed" not in io.stdout, io.stdout
        assert inspect(path).virtual_size == size
    assert inspect(dyn).blocks_allocated == 2
    assert inspect(dyn).file_size < 8 * MiB  # sparse: BAT plus two blocks


def test_size_limit_is_2040_gib(tmp_path: Path) -> None:
    from viridian.disks import InvalidDiskArgument

    with pytest.raises(InvalidDiskArgument, match="2040 GiB"):
        new_dynamic(tmp_path / "x.vhd", MAX_VIRTUAL_SIZE + 512)
    assert not (tmp_path / "x.vhd").exists()


@pytest.mark.parametrize(
    "options", ["subformat=dynamic", "subformat=fixed", "subformat=dynamic,force_size=on",
                "subformat=fixed,force_size=on"],
)  # fmt: skip
def test_qemu_made_vhds_read_identical_with_ours(tmp_path: Path, options: str) -> None:
    model = make_pattern(100 * MiB, seed=3, runs=10)
    raw = write_raw(tmp_path / "ref.raw", model)
    vhd = tmp_path / "q.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", options, raw, vhd)
    back = tmp_path / "back.raw"
    qemu_img("convert", "-f", "vpc", "-O", "raw", vhd, back)
    expected = back.read_bytes()
    with open_disk(vhd) as disk:
        assert disk.size == qemu_info(vhd)["virtual-size"]
        assert disk.read(0, disk.size) == expected
    ours = tmp_path / "ours.raw"
    convert(vhd, ours, "raw")
    assert ours.read_bytes() == expected


def test_qemu_io_writes_into_our_dynamic_disk_are_read_by_us(tmp_path: Path) -> None:
    path = tmp_path / "d.vhd"
    new_dynamic(path, 32 * MiB)
    with open_disk(path, writable=True) as disk:
        disk.write(3 * MiB, b"\x11" * MiB)
    qemu_io = ["qemu-io", "-f", "vpc", "-c", "write -P 0x22 10M 3M", "-c", "write -P 0x33 3584k 4k"]
    subprocess.run([*qemu_io, str(path)], check=True, capture_output=True)
    expect = bytearray(32 * MiB)
    expect[3 * MiB : 4 * MiB] = b"\x11" * MiB
    expect[10 * MiB : 13 * MiB] = b"\x22" * 3 * MiB
    expect[3584 * 1024 : 3588 * 1024] = b"\x33" * 4096
    with open_disk(path) as disk:
        assert disk.read(0, 32 * MiB) == expect
    assert vhdi_read(path)[1] == expect


def test_detect_format_names_the_qemu_driver(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "r.raw", make_pattern(4 * MiB, seed=1, runs=2))
    assert detect_format(raw) == "raw"
    for fmt in ("qcow2", "vhdx"):
        qemu_img("create", "-q", "-f", fmt, tmp_path / f"x.{fmt}", "8M")
        assert detect_format(tmp_path / f"x.{fmt}") == fmt
    new_fixed(tmp_path / "f.vhd", 4 * MiB)
    assert detect_format(tmp_path / "f.vhd") == "vpc"
    assert inspect(tmp_path / "f.vhd").disk_type == "fixed"


CHS_EDGES = [
    4 * 1024 * 17 * 512,  # 4 heads x 17 spt runs out: heads grow
    16 * 1024 * 17 * 512,  # 16 heads x 17 spt runs out: switch to 31 spt
    16 * 1024 * 31 * 512,  # 31 spt runs out: switch to 63 spt
    65535 * 16 * 63 * 512,  # 63 spt runs out: switch to 255 spt
    65535 * 16 * 255 * 512,  # the CHS maximum
]


@pytest.mark.parametrize("edge", CHS_EDGES)
@pytest.mark.parametrize("delta", [-512, 0, 512])
def test_sizes_across_chs_boundaries_are_exact(tmp_path: Path, edge: int, delta: int) -> None:
    size = edge + delta
    path = tmp_path / "d.vhd"
    new_dynamic(path, size)
    assert qemu_info(path)["virtual-size"] == size
    assert inspect(path).virtual_size == size
    import pyvhdi

    f = pyvhdi.file()
    f.open(str(path))
    assert f.get_media_size() == size
    f.close()
