"""qemu-img check and compare on the output of every VHDX operation (issue 14)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from viridian.disks import (
    compact,
    convert,
    expand,
    merge,
    new_differencing,
    new_vhdx_dynamic,
    new_vhdx_fixed,
    open_disk,
)

from .helpers import MiB, make_pattern, qemu_img, qemu_same, write_raw

SIZE = 12 * MiB


def qemu_checks(path: Path, fmt: str = "vhdx") -> None:
    assert "No errors were found" in qemu_img("check", "-f", fmt, path)


def model_raw(folder: Path) -> Path:
    return write_raw(folder / "model.raw", make_pattern(SIZE, seed=31, runs=6))


def op_new_fixed(w: Path) -> tuple[Path, Path]:
    new_vhdx_fixed(w / "f.vhdx", SIZE, MiB)
    return w / "f.vhdx", write_raw(w / "zero.raw", bytes(SIZE))


def op_new_dynamic(w: Path) -> tuple[Path, Path]:
    new_vhdx_dynamic(w / "d.vhdx", SIZE, MiB)
    return w / "d.vhdx", write_raw(w / "zero.raw", bytes(SIZE))


def op_raw_to_vhdx(w: Path) -> tuple[Path, Path]:
    raw = model_raw(w)
    convert(raw, w / "c.vhdx", "dynamic", block_size=MiB)
    return w / "c.vhdx", raw


def op_raw_to_fixed_vhdx(w: Path) -> tuple[Path, Path]:
    raw = model_raw(w)
    convert(raw, w / "c.vhdx", "fixed", block_size=MiB)
    return w / "c.vhdx", raw


def op_vhd_to_vhdx(w: Path) -> tuple[Path, Path]:
    raw = model_raw(w)
    convert(raw, w / "s.vhd", "dynamic")
    convert(w / "s.vhd", w / "c.vhdx", "dynamic")
    return w / "c.vhdx", raw


def op_compact(w: Path) -> tuple[Path, Path]:
    path, raw = op_raw_to_vhdx(w)
    with open_disk(path, writable=True) as disk:
        disk.write(0, bytes(2 * MiB))  # two whole blocks zeroed: compact frees them
    data = bytearray(raw.read_bytes())
    data[: 2 * MiB] = bytes(2 * MiB)
    compact(path)
    return path, write_raw(w / "compacted.raw", data)


def op_expand(w: Path) -> tuple[Path, Path]:
    path, raw = op_raw_to_vhdx(w)
    expand(path, SIZE + 5 * MiB)
    return path, write_raw(w / "grown.raw", raw.read_bytes() + bytes(5 * MiB))


def _child(w: Path) -> tuple[Path, bytearray]:
    base, raw = op_raw_to_vhdx(w)
    new_differencing(w / "child.avhdx", base)
    data = bytearray(raw.read_bytes())
    with open_disk(w / "child.avhdx", writable=True) as disk:
        disk.write(3 * MiB + 4096, b"\x5a" * 70000)
    data[3 * MiB + 4096 : 3 * MiB + 4096 + 70000] = b"\x5a" * 70000
    return base, data


def op_merge_into_parent(w: Path) -> tuple[Path, Path]:
    base, data = _child(w)
    merge(w / "child.avhdx", into_parent=True)
    return base, write_raw(w / "merged.raw", data)


def op_merge_to_output(w: Path) -> tuple[Path, Path]:
    _, data = _child(w)
    merge(w / "child.avhdx", output=w / "flat.vhdx")
    return w / "flat.vhdx", write_raw(w / "merged.raw", data)


OPS: list[Callable[[Path], tuple[Path, Path]]] = [
    op_new_fixed, op_new_dynamic, op_raw_to_vhdx, op_raw_to_fixed_vhdx, op_vhd_to_vhdx,
    op_compact, op_expand, op_merge_into_parent, op_merge_to_output,
]  # fmt: skip


@pytest.mark.parametrize("op", OPS, ids=[op.__name__[3:] for op in OPS])
def test_qemu_img_checks_and_compares_every_vhdx_output(
    tmp_path: Path, op: Callable[[Path], tuple[Path, Path]]
) -> None:
    out, expected = op(tmp_path)
    qemu_checks(out)
    assert qemu_same(expected, out, "vhdx")


def test_vhdx_to_vhd_and_raw_read_equal_in_qemu(tmp_path: Path) -> None:
    path, raw = op_raw_to_vhdx(tmp_path)
    convert(path, tmp_path / "back.vhd", "dynamic")
    convert(path, tmp_path / "back.raw", "raw")
    assert qemu_same(raw, tmp_path / "back.vhd", "vpc")
    assert (tmp_path / "back.raw").read_bytes() == raw.read_bytes()
