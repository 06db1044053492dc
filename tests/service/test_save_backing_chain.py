"""Save refused up front for a VM whose qcow2 disk sits on a VHD/VHDX backing file
(issue 18: VMs provisioned from templates made before VHD/VHDX template disks were kept
as qcow2). QEMU's vpc/vhdx driver anywhere in the chain blocks saving memory, so the VM
says so before a Save is tried — naming the disk, its base and the driver, and what to
do — while a chain of qcow2/raw files, or a VM whose storage daemon serves its disks,
can be saved. Real images made by qemu-img and the VHD library; no QEMU runs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from viridian.disks import new_dynamic
from viridian.errors import Conflict
from viridian.model import VMSettings, settings_from_dict
from viridian.service.storage.checks import memory_save_blocker
from viridian.service.vms.availability import check_save, unavailable

MB = 1024 * 1024


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


def _overlay(path: Path, base: Path, base_format: str) -> Path:
    _qemu_img("create", "-f", "qcow2", "-b", base.name, "-F", base_format, str(path))
    return path


def _vm(disk: Path, disk_format: str | None = "qcow2") -> VMSettings:
    drive: dict[str, Any] = {"controller": 0, "location": 0, "kind": "hard_disk",
                             "path": str(disk)}
    if disk_format:
        drive["format"] = disk_format
    return settings_from_dict({"name": "web", "ide": [drive]})


def _live(settings: VMSettings, served: bool = False) -> Any:
    return SimpleNamespace(record=SimpleNamespace(name="web", settings=settings),
                           storage_daemon_serves=served)


def test_a_qcow2_overlay_on_a_vhd_base_is_not_offered_save_and_says_why(
        tmp_path: Path) -> None:
    base = tmp_path / "base.vhd"
    new_dynamic(base, 8 * MB)
    disk = _overlay(tmp_path / "web.qcow2", base, "vpc")
    why = unavailable(_live(_vm(disk)))["save"]
    assert why.startswith("QEMU cannot save the memory of a VM whose disks sit on VHD/VHDX "
                          "backing files"), why
    assert f"{disk} is a qcow2 overlay over {base} (vpc driver)" in why
    assert "convert the base to qcow2" in why and "storage daemon" not in why
    with pytest.raises(Conflict) as refused:
        check_save(_live(_vm(disk)))
    assert refused.value.message.startswith("cannot save VM 'web': QEMU cannot save")
    assert refused.value.message.endswith("shut it down or turn it off instead; nothing was "
                                          "changed")


def test_a_vhdx_deeper_in_the_chain_blocks_too_even_with_the_format_left_to_detection(
        tmp_path: Path) -> None:
    base = tmp_path / "base.vhdx"
    _qemu_img("create", "-f", "vhdx", str(base), "8M")
    middle = _overlay(tmp_path / "middle.qcow2", base, "vhdx")
    disk = _overlay(tmp_path / "top.qcow2", middle, "qcow2")
    why = memory_save_blocker(_vm(disk, None))
    assert why is not None and f"over {base} (vhdx driver)" in why


def test_qcow2_and_raw_chains_and_daemon_served_disks_can_be_saved(tmp_path: Path) -> None:
    raw = tmp_path / "base.img"
    raw.write_bytes(b"\0" * MB)
    plain = _overlay(tmp_path / "plain.qcow2", raw, "raw")
    assert memory_save_blocker(_vm(plain)) is None
    assert unavailable(_live(_vm(plain))) == {}
    base = tmp_path / "base.vhd"
    new_dynamic(base, 8 * MB)
    on_vhd = _overlay(tmp_path / "on-vhd.qcow2", base, "vpc")
    assert memory_save_blocker(_vm(on_vhd), served=True) is None  # the daemon opens it
    assert unavailable(_live(_vm(on_vhd), served=True)) == {}


def test_a_missing_or_foreign_backing_file_is_not_a_reason(tmp_path: Path) -> None:
    gone = tmp_path / "gone.vhd"
    new_dynamic(gone, 8 * MB)
    disk = _overlay(tmp_path / "web.qcow2", gone, "vpc")
    gone.unlink()  # QEMU would refuse to start it: not Save's business
    assert memory_save_blocker(_vm(disk)) is None
    assert memory_save_blocker(_vm(tmp_path / "absent.qcow2")) is None
