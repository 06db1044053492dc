"""Offline guest generalisation of qcow2, VHD and VHDX template disks: a qcow2 copy is
converted to a temporary raw image beside it, edited with debugfs and converted back; a
VHD/VHDX source is converted to the temporary raw image, edited and stored as qcow2 (same
virtual size, the source unchanged); no temporary file is left; a qcow2 copy with a
backing file and a disk without ext are left alone. Then through the service: a VM whose
VHD boot disk is the guest kit's plus an ext4 partition → template → the template's disk
has an empty machine id and no SSH host keys, the source VHD is unchanged, and a VM
provisioned from the template boots to "provisioned: ready" and can be saved (QEMU holds
no vpc node, whose migration blocker would refuse it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.library.test_sysprep import _cat, _partitioned, _root
from tests.service.harness import act, running_service, state, wait_job
from tests.service.test_switches_guest import remove_leftovers
from viridian.library.sysprep import ls_names, template_format
from viridian.service.library.images import format_of
from viridian.service.library.sysprep import generalise_disk, make_template_disk

MIB = 1 << 20
RESETS = ("guest_hostname", "guest_machine_id", "guest_persistent_net_rules",
          "guest_ssh_host_keys")


def _size(path: Path, fmt: str) -> int:
    return int(json.loads(subprocess.run(
        ["qemu-img", "info", "-f", fmt, "--output=json", str(path)], capture_output=True,
        text=True, check=True).stdout)["virtual-size"])


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
def test_a_template_disk_loses_its_guest_identity(tmp_path: Path, fmt: str,
                                                  options: tuple[str, ...]) -> None:
    raw = _partitioned(tmp_path, "gpt")
    source = tmp_path / f"source.{fmt}"
    _convert(raw, source, *options)
    size, digest = _size(source, fmt), hashlib.sha256(source.read_bytes()).digest()
    staging = tmp_path / "staging"
    staging.mkdir()

    made, stored, resets = make_template_disk(source, fmt, lambda f: staging / f"disk.{f}")
    assert resets == RESETS and stored == "qcow2" and made == staging / "disk.qcow2"
    assert sorted(p.name for p in staging.iterdir()) == [made.name]  # no temporary left
    assert format_of(made) == "qcow2" and _size(made, "qcow2") == size
    assert hashlib.sha256(source.read_bytes()).digest() == digest  # only read
    image = f"{_as_raw(made, 'qcow2', tmp_path / 'check.raw')}?offset={2048 * 512}"
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


def test_template_formats() -> None:
    assert [template_format(f) for f in ("raw", "qcow2", "vpc", "vhdx")] == [
        "raw", "qcow2", "qcow2", "qcow2"]


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
                assert disk["format"] == "qcow2" and disk["path"].endswith(".qcow2")
                assert {"guest_machine_id", "guest_ssh_host_keys"} <= set(
                    job["result"]["generalised"])
                copy = Path(disk["path"])
                assert sorted(p.name for p in copy.parent.iterdir()) == sorted(
                    [copy.name, "template.json"])
                raw = _as_raw(copy, "qcow2", tmp_path / "check.raw")
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
                act(api, "made", "save")  # refused if QEMU held a vpc node
                assert state(api, "made") == "Saved"
                assert hashlib.sha256(copy.read_bytes()).hexdigest() == disk["sha256"]
        finally:
            service.stop()
            remove_leftovers(service.data_dir)
