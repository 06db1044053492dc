"""Offline guest generalisation of template disks on real ext4 images (mkfs.ext4 -d,
sfdisk for MBR and GPT tables, e2fsprogs' debugfs): machine id emptied, SSH host keys and
persistent NIC rules removed, host name localhost; other files untouched; non-raw
formats and disks without ext file systems are left alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from viridian.library.sysprep import ls_names, mbr_partitions, plan
from viridian.service.library.sysprep import ext_offsets, generalise_disk

MIB = 1 << 20


def _root(tmp: Path) -> Path:
    root = tmp / "root"
    for folder in ("etc/ssh", "etc/udev/rules.d", "var/lib/dbus", "srv"):
        (root / folder).mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/hostname").write_text("golden-image\n")
    for kind in ("rsa", "ed25519"):
        (root / f"etc/ssh/ssh_host_{kind}_key").write_text(f"PRIVATE {kind}\n")
        (root / f"etc/ssh/ssh_host_{kind}_key.pub").write_text(f"PUBLIC {kind}\n")
    (root / "etc/ssh/sshd_config").write_text("PermitRootLogin no\n")
    (root / "etc/udev/rules.d/70-persistent-net.rules").write_text('ATTR{address}=="x"\n')
    (root / "srv/marker").write_text("KEEP-ME\n")
    return root


def _fs(tmp: Path) -> Path:
    image = tmp / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-d", str(_root(tmp)), str(image), "8M"], check=True)
    return image


def _partitioned(tmp: Path, label: str) -> Path:
    disk = tmp / f"{label}.img"
    with open(disk, "wb") as handle:
        handle.truncate(16 * MIB)
    table = "label: gpt\nstart=2048, size=18432\n" if label == "gpt" else \
        "label: dos\nstart=2048, size=18432, type=83\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=table, text=True, check=True)
    with open(disk, "r+b") as handle:
        handle.seek(2048 * 512)
        handle.write(_fs(tmp).read_bytes())
    return disk


def _cat(image: str, path: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat {path}", image], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("layout", ["whole", "dos", "gpt"])
def test_a_raw_disk_loses_its_guest_identity(tmp_path: Path, layout: str) -> None:
    disk = _fs(tmp_path) if layout == "whole" else _partitioned(tmp_path, layout)
    offset = 0 if layout == "whole" else 2048 * 512
    assert ext_offsets(disk) == [offset]
    image = f"{disk}?offset={offset}" if offset else str(disk)
    resets = generalise_disk(disk, "raw")
    assert resets == ("guest_hostname", "guest_machine_id", "guest_persistent_net_rules",
                      "guest_ssh_host_keys")
    assert _cat(image, "/etc/machine-id") == ""
    assert _cat(image, "/etc/hostname") == "localhost\n"
    ssh = subprocess.run(["debugfs", "-R", "ls -p /etc/ssh", image], capture_output=True,
                         text=True, check=True).stdout
    assert ls_names(ssh) == {"sshd_config"}
    assert "machine-id" not in ls_names(subprocess.run(
        ["debugfs", "-R", "ls -p /var/lib/dbus", image], capture_output=True, text=True,
        check=True).stdout)
    assert _cat(image, "/srv/marker") == "KEEP-ME\n"  # the rest is untouched
    check = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_other_formats_and_plain_data_are_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data.img"
    data.write_bytes(b"NOT-A-FILESYSTEM".ljust(MIB, b"\0"))
    before = data.read_bytes()
    assert generalise_disk(data, "raw") == ()
    assert data.read_bytes() == before
    image = _fs(tmp_path)
    assert generalise_disk(image, "qcow2") == ()  # only raw copies are edited


def test_plan_and_parsers() -> None:
    sector = bytearray(512)
    sector[510:512] = b"\x55\xaa"
    sector[446 + 4] = 0x83
    sector[446 + 8:446 + 12] = (2048).to_bytes(4, "little")
    assert mbr_partitions(bytes(sector)) == ([2048 * 512], False)
    assert mbr_partitions(bytes(512)) == ([], False)
    listing = "/2/040755/0/0/./1024/\n/12/0100644/0/0/machine-id/33/\n"
    assert ls_names(listing) == {"machine-id"}
    nothing = plan(set(), set(), set(), set(), "/e", "/h")
    assert nothing.commands == () and nothing.resets == ()
    some = plan({"hostname"}, {"ssh_host_rsa_key", "moduli"}, set(), set(), "/e", "/h")
    assert some.commands == ("rm /etc/ssh/ssh_host_rsa_key", "rm /etc/hostname",
                             "write /h /etc/hostname")
