"""`disk check` on an unknown disk type and `check --repair` of a cut trailing footer (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from viridian.disks import check, new_dynamic, open_disk
from viridian.disks.vhd_layout import FOOTER_SIZE, Footer

from .helpers import MiB, make_pattern, qemu_img, qemu_same, write_raw
from .test_cli import run


def retype_footers(path: Path, disk_type: int) -> None:
    """Give both footer copies ``disk_type``, with valid checksums."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        footer = Footer.unpack(f.read(FOOTER_SIZE), str(path))
        raw = replace(footer, disk_type=disk_type).pack()
        f.seek(0)
        f.write(raw)
        f.seek(size - FOOTER_SIZE)
        f.write(raw)


@pytest.mark.parametrize("disk_type", [0, 1, 5, 6])
def test_check_reports_an_unknown_disk_type_instead_of_crashing(
    tmp_path: Path, disk_type: int
) -> None:
    path = tmp_path / "odd.vhd"
    new_dynamic(path, 4 * MiB)
    retype_footers(path, disk_type)
    before = path.read_bytes()
    for args in (["check", path], ["check", path, "--repair"]):
        out, err = run(*args, code=2)
        assert f"[disk_type] {path}: footer disk type {disk_type} is not one of 2" in out
        assert "errors found" in out and "Traceback" not in out + err
    assert path.read_bytes() == before  # an unknown type is never "repaired"
    report = json.loads(run("check", path, "--json", code=2)[0])
    assert [p["code"] for p in report["problems"]] == ["disk_type"] and not report["ok"]


def _dynamic_with_data(tmp_path: Path, maker: str) -> tuple[Path, Path]:
    """(raw reference, dynamic VHD with the same content) written by ``maker``."""
    raw = write_raw(tmp_path / "ref.raw", make_pattern(6 * MiB, seed=5, runs=4))
    vhd = tmp_path / f"{maker}.vhd"
    if maker == "qemu":
        qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, vhd)
    else:
        run("convert", raw, vhd)
    return raw, vhd


@pytest.mark.parametrize("maker", ["viridian", "qemu"])
@pytest.mark.parametrize("cut", [1, 200, 511, 512])
def test_repair_of_a_footer_cut_short_leaves_a_clean_disk_qemu_reads(
    tmp_path: Path, maker: str, cut: int
) -> None:
    raw, vhd = _dynamic_with_data(tmp_path, maker)
    if maker == "qemu":  # qemu-img's own size may differ from the raw's (CHS rounding)
        raw = tmp_path / "qemu.raw"
        qemu_img("convert", "-f", "vpc", "-O", "raw", vhd, raw)
    whole = vhd.stat().st_size
    os.truncate(vhd, whole - cut)
    out, _ = run("check", vhd, code=2)
    assert "[footer_missing]" in out and "(repairable)" in out
    assert "[bat_entry_outside_file]" not in out  # complete blocks are not lost
    out, _ = run("check", vhd, "--repair")
    assert "repaired: rewrote footer copies" in out and "no errors found" in out
    assert "not repaired" not in out
    assert run("check", vhd)[0].strip() == "no errors found"
    assert vhd.stat().st_size == whole
    assert qemu_same(raw, vhd)
    res = subprocess.run(["qemu-img", "info", "-f", "vpc", str(vhd)], capture_output=True)
    assert res.returncode == 0, res.stderr


def test_repair_appends_the_footer_after_unknown_trailing_bytes(tmp_path: Path) -> None:
    raw, vhd = _dynamic_with_data(tmp_path, "viridian")
    with open(vhd, "ab") as f:
        f.write(b"\x01" * 700)  # the footer is no longer at the end
    report = check(vhd, repair=True)
    assert [p.code for p in report.problems] == ["footer_missing"]
    assert report.ok and check(vhd).problems == []
    assert qemu_same(raw, vhd)
    with open_disk(vhd) as disk:
        assert disk.read(0, disk.size) == raw.read_bytes()
