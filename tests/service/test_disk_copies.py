"""Differencing disks handed in through the settings (any slot, IDE or SCSI) are copied
and announced (docs/api.md, "VMs": ``notices`` and ``disk_copies``); drives that are
not valid settings are refused before anything is copied."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.service.harness import Service
from viridian.disks import (
    new_differencing,
    new_dynamic,
    new_vhdx_differencing,
    new_vhdx_dynamic,
)
from viridian.service.storage.checks import CONVERTED_FOLDER

MB = 1024 * 1024


def _chain(folder: Path, name: str) -> Path:
    parent, child = folder / f"{name}-base.vhd", folder / f"{name}.vhd"
    new_dynamic(parent, 8 * MB)
    new_differencing(child, parent)
    return child


def test_a_differencing_scsi_disk_is_copied_and_announced(
        api: httpx.Client, service: Service, tmp_path: Path) -> None:
    child = _chain(tmp_path, "data")
    scsi = [{"controller": 1, "disks": [{"location": 3, "path": str(child)}]}]
    created = api.post("/vms", json={"name": "sc", "settings": {"scsi": scsi}})
    assert created.status_code == 201, created.text
    copy = created.json()["settings"]["scsi"][0]["disks"][0]["path"]
    assert copy != str(child) and Path(copy).is_file()
    assert created.json()["notices"] == [
        f"differencing disk {child} was copied to standalone {copy}; the guest writes go "
        f"to {copy}, not to {child} or its parent"]
    assert api.get("/vms/sc").json()["disk_copies"] == [
        {"drive": "SCSI 1:3", "path": copy, "copied_from": str(child)}]


def test_invalid_drives_are_refused_before_any_copy(
        api: httpx.Client, service: Service, tmp_path: Path) -> None:
    child = _chain(tmp_path, "bad")
    ide = [{"controller": 0, "location": 7, "kind": "hard_disk", "path": str(child)}]
    refused = api.post("/vms", json={"name": "bad", "settings": {"ide": ide}})
    assert refused.status_code == 400, refused.text
    assert "ide[0].location" in refused.json()["error"]["message"]
    copies = service.data_dir / CONVERTED_FOLDER
    assert not copies.exists() or list(copies.iterdir()) == []
    assert api.get("/vms").json()["vms"] == []


def test_a_differencing_vhdx_is_copied_to_a_standalone_disk_qemu_can_open(
        api: httpx.Client, service: Service, tmp_path: Path) -> None:
    parent, child = tmp_path / "base.vhdx", tmp_path / "child.avhdx"
    new_vhdx_dynamic(parent, 8 * MB)
    new_vhdx_differencing(child, parent)
    created = api.post("/vms", json={"name": "dx", "vhd": str(child)})
    assert created.status_code == 201, created.text
    copy = created.json()["settings"]["ide"][0]["path"]
    assert copy != str(child) and Path(copy).is_file()
    assert created.json()["notices"][0].startswith(f"differencing disk {child} was copied")
    info = subprocess.run(["qemu-img", "info", "--output=json", copy], capture_output=True,
                          text=True, check=True)
    assert json.loads(info.stdout)["virtual-size"] == 8 * MB
