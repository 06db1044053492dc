"""Offline guest generalisation of qcow2, VHD and VHDX template copies: converted to a
temporary raw image beside the copy, edited with debugfs, converted back into the same
format (same subformat, same virtual size); the temporary files are gone afterwards;
copies that are not whole disks (qcow2 with a backing file, differencing VHD) are left
alone. Then through the service: a VM whose VHD boot disk is the guest kit's plus an ext4
partition → template → the template's VHD has an empty machine id and no SSH host keys,
the source VHD is unchanged, and a VM provisioned from the template boots to
"provisioned: ready"."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.library.test_sysprep import _cat, _partitioned, _root
from tests.service.harness import running_service, wait_job
from tests.service.test_switches_guest import remove_leftovers
from viridian.library.sysprep import (
    VHD_DIFFERENCING,
    VHD_DYNAMIC,
    VHD_FIXED,
    convert_back_options,
    ls_names,
    vhd_disk_type,
)
from viridian.service.library.images import format_of
from viridian.service.library.sysprep import generalise_disk

MIB = 1 << 20
RESETS = ("guest_hostname", "guest_machine_id", "guest_persistent_net_rules",
          "guest_ssh_host_keys")


def _info(path: Path) -> dict[str, object]:
    return dict(json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                                          capture_output=True, text=True, check=True).stdout))


def _convert(source: Path, target: Path, *options: str) -> None:
    subprocess.run(["qemu-img", "convert", "-f", "raw", *options, str(source), str(target)],
                   check=True)


def _as_raw(image: Path, fmt: str, target: Path) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(image), str(target)],
                   check=True)
    return target


def _ssh_names(image: str) -> set[str]:
    return ls_names(subprocess.run(["debugfs", "-R", "ls -p /etc/ssh", image],
                                   capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize(("fmt", "options"), [
    ("qcow2", ("-O", "qcow2")),
    ("vpc", ("-O", "vpc", "-o", "subformat=dynamic,force_size=on")),
    ("vpc", ("-O", "vpc", "-o", "subformat=fixed,force_size=on")),
    ("vhdx", ("-O", "vhdx")),
], ids=["qcow2", "vhd-dynamic", "vhd-fixed", "vhdx"])
def test_a_converted_copy_loses_its_guest_identity(tmp_path: Path, fmt: str,
                                                   options: tuple[str, ...]) -> None:
    raw = _partitioned(tmp_path, "gpt")
    staging = tmp_path / "staging"
    staging.mkdir()
    copy = staging / f"disk.{fmt}"
    _convert(raw, copy, *options)
    before = _info(copy)["virtual-size"]
    fixed_before = vhd_disk_type(copy.read_bytes()[-512:]) if fmt == "vpc" else None

    assert generalise_disk(copy, fmt) == RESETS
    assert sorted(p.name for p in staging.iterdir()) == [copy.name]  # no temporary left
    assert format_of(copy) == fmt and _info(copy)["virtual-size"] == before
    if fmt == "vpc":
        assert vhd_disk_type(copy.read_bytes()[-512:]) == fixed_before  # same subformat
    image = f"{_as_raw(copy, fmt, tmp_path / 'check.raw')}?offset={2048 * 512}"
    assert _cat(image, "/etc/machine-id") == ""
    assert _cat(image, "/etc/hostname") == "localhost\n"
    assert _ssh_names(image) == {"sshd_config"}
    assert _cat(image, "/srv/marker") == "KEEP-ME\n"


def test_copies_that_are_not_whole_disks_or_hold_no_ext_are_left_alone(tmp_path: Path
                                                                        ) -> None:
    base = _partitioned(tmp_path, "dos")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
                    str(overlay)], check=True)
    data = tmp_path / "data.raw"
    data.write_bytes(b"NOT-A-FILESYSTEM".ljust(MIB, b"\0"))
    plain = tmp_path / "plain.vhdx"
    _convert(data, plain, "-O", "vhdx")
    for image, fmt in ((overlay, "qcow2"), (plain, "vhdx")):
        before = image.read_bytes()
        assert generalise_disk(image, fmt) == ()
        assert image.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["dos.img", "fs.img", "root", "overlay.qcow2", "data.raw", "plain.vhdx"])


def test_vhd_footer_and_convert_options() -> None:
    footer = bytearray(512)
    footer[:8] = b"conectix"
    for kind in (VHD_FIXED, VHD_DYNAMIC, VHD_DIFFERENCING):
        footer[60:64] = kind.to_bytes(4, "big")
        assert vhd_disk_type(bytes(footer)) == kind
    assert vhd_disk_type(bytes(512)) is None
    assert convert_back_options("vpc", True) == ("-O", "vpc", "-o",
                                                 "subformat=fixed,force_size=on")
    assert convert_back_options("vhdx", False) == ("-O", "vhdx", "-o", "subformat=dynamic")
    assert convert_back_options("qcow2", False) == ("-O", "qcow2")
    with pytest.raises(ValueError, match="raw"):
        convert_back_options("raw", False)


def _guest_vhd(work: Path) -> Path:
    """The guest kit's disk with a second (ext4, Linux) partition holding an identity."""
    from viridian.guestkit import build

    disk = work / "guest.raw"
    shutil.copyfile(build().raw, disk)
    start = disk.stat().st_size // 512
    with open(disk, "r+b") as handle:
        handle.truncate((start + 16384) * 512)
    subprocess.run(["sfdisk", "-q", "--append", str(disk)], input=f"start={start}, type=83\n",
                   text=True, check=True)
    fs = work / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-d", str(_root(work)), str(fs), "8M"], check=True)
    with open(disk, "r+b") as handle:
        handle.seek(start * 512)
        handle.write(fs.read_bytes())
    vhd = work / "boot.vhd"
    _convert(disk, vhd, "-O", "vpc", "-o", "subformat=dynamic,force_size=on")
    return vhd


@pytest.mark.guest
def test_vhd_template_is_generalised_and_provisions(tmp_path: Path) -> None:
    vhd = _guest_vhd(tmp_path)
    source_sha = hashlib.sha256(vhd.read_bytes()).hexdigest()
    with running_service() as service:
        try:
            with service.client() as api:
                assert api.post("/vms", json={"name": "src", "memory_mb": 128,
                                              "vhd": str(vhd)}).status_code == 201
                job = wait_job(api, api.post("/templates", json={"name": "gold",
                                                                 "vm": "src"}).json())
                assert job["state"] == "completed", job
                (disk,) = job["result"]["disks"]
                assert disk["format"] == "vpc"
                assert {"guest_machine_id", "guest_ssh_host_keys"} <= set(
                    job["result"]["generalised"])
                copy = Path(disk["path"])
                assert sorted(p.name for p in copy.parent.iterdir()) == sorted(
                    [copy.name, "template.json"])
                raw = _as_raw(copy, "vpc", tmp_path / "check.raw")
                (offset,) = [int(line.split("start=")[1].split(",")[0]) * 512 for line in
                             subprocess.run(["sfdisk", "-d", str(raw)], capture_output=True,
                                            text=True, check=True).stdout.splitlines()
                             if "type=83" in line]
                image = f"{raw}?offset={offset}"
                assert _cat(image, "/etc/machine-id") == ""
                assert _ssh_names(image) == {"sshd_config"}
                assert hashlib.sha256(vhd.read_bytes()).hexdigest() == source_sha

                answer = api.post("/provision", json={"template": "gold", "name": "made"})
                assert answer.status_code == 202, answer.text
                made = wait_job(api, answer.json(), timeout=300)
                assert made["state"] == "completed", made
                deadline, shown = time.monotonic() + 240, None
                while time.monotonic() < deadline:
                    shown = api.get("/vms/made").json().get("provisioning")
                    if shown == "provisioned: ready":
                        break
                    time.sleep(1)
                assert shown == "provisioned: ready"
                assert hashlib.sha256(copy.read_bytes()).hexdigest() == disk["sha256"]
        finally:
            service.stop()
            remove_leftovers(service.data_dir)
