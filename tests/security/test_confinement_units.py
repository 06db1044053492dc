"""The pure parts of confinement: POSIX ACL encoding (acl(5)), which files an argv or a
QMP command names, and the confined argv — checked against a real golden QEMU argv and a
real file's ACL as the kernel stores it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from viridian.qemu import acl
from viridian.qemu.confinement import (
    GID,
    UID_BASE,
    UID_COUNT,
    Confinement,
    FileGrant,
    Identity,
    argv_grants,
    command_grants,
    confined_argv,
    preferred_uid,
    tap_names,
    without_own_pidfile,
)

GOLDEN = Path(__file__).resolve().parents[1] / "qemu" / "golden" / "full_gen1.argv"


def test_acl_round_trips_and_masks_the_group_class() -> None:
    base = acl.from_mode(0o640)
    added = acl.with_entry(base, acl.USER, 4242, 6)
    assert acl.decode(acl.encode(added)) == sorted(added)
    assert acl.Entry(acl.MASK, acl.UNDEFINED_ID, 6) in added  # group r (4) | user rw (6)
    back = acl.without_entry(added, acl.USER, 4242)
    assert sorted(back) == sorted(base)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder anyone may traverse (pytest's own base folder is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="vir-acl-", dir="/tmp"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_acl_written_is_what_the_kernel_enforces(open_folder: Path) -> None:
    secret = open_folder / "disk"
    secret.write_bytes(b"x")
    os.chmod(secret, 0o600)
    acl.grant(secret, acl.USER, 2_100_999_998, 4)
    assert acl.Entry(acl.USER, 2_100_999_998, 4) in acl.read(secret)
    reader = ["setpriv", "--reuid=2100999998", f"--regid={GID}", "--clear-groups", "cat",
              str(secret)]
    other = ["setpriv", "--reuid=2100999997", f"--regid={GID}", "--clear-groups", "cat",
             str(secret)]
    assert subprocess.run(reader, capture_output=True).returncode == 0
    assert subprocess.run(other, capture_output=True).returncode != 0
    acl.revoke(secret, acl.USER, 2_100_999_998)
    assert subprocess.run(reader, capture_output=True).returncode != 0
    assert os.stat(secret).st_mode & 0o777 == 0o600


def test_argv_grants_name_every_file_of_a_golden_argv() -> None:
    argv = GOLDEN.read_text().split("\n")
    grants = {g.path: g for g in argv_grants([a for a in argv if a])}
    assert grants["/srv/vms/full_gen1/system.vhd"] == FileGrant(
        "/srv/vms/full_gen1/system.vhd", 6)
    assert grants["/srv/vms/full_gen1/tools.iso"].perm == 4  # read-only=on
    assert grants["/srv/vms/full_gen1/com2.sock"].creates
    assert "/usr/lib/ipxe/ipxe.lkrn" in grants
    assert "/var/lib/viridian/run/netboot-tulip.rom" in grants
    assert not any(p.endswith("-file") for p in grants)  # node names are not paths


def test_qmp_commands_name_their_files() -> None:
    add = {"driver": "raw", "node-name": "f", "read-only": True,
           "file": {"driver": "file", "filename": "/isos/x.iso"}}
    assert command_grants("blockdev-add", add) == [FileGrant("/isos/x.iso", 4)]
    snap = {"actions": [{"type": "blockdev-snapshot-sync",
                         "data": {"snapshot-file": "/vms/o.qcow2", "node-name": "n"}}]}
    assert command_grants("transaction", snap) == [FileGrant("/vms/o.qcow2", 6)]
    assert command_grants("query-status", None) == []
    assert command_grants("human-monitor-command", {"command-line": "/etc/shadow"}) == []


def test_confined_argv_drops_everything_and_qemus_own_pidfile() -> None:
    folder = Path("/d/run/vm")
    argv = ["qemu", "-pidfile", str(folder / "qemu.pid"), "-m", "64"]
    assert without_own_pidfile(argv, folder) == ["qemu", "-m", "64"]
    assert without_own_pidfile(["qsd", "--pidfile", "/d/run/vm/s.pid"], folder) == \
        ["qsd", "--pidfile", "/d/run/vm/s.pid"]
    wrapped = confined_argv(["qemu"], Identity(2_100_000_005))
    assert wrapped[:8] == ["setpriv", "--reuid=2100000005", f"--regid={GID}", "--clear-groups",
                           "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


@pytest.mark.parametrize(("argv", "taps"), [
    (["-netdev", "tap,id=net0,ifname=vtap1a2b,script=no,downscript=no"], ["vtap1a2b"]),
    (["-netdev", "user,id=net0"], [])])
def test_tap_names(argv: list[str], taps: list[str]) -> None:
    assert tap_names(argv) == taps


def test_a_vm_gets_the_same_uid_on_every_host_unless_taken(tmp_path: Path) -> None:
    """Derived from the VM id, so two services sharing storage agree; recorded (0600)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    uid = Confinement(one).allocate("vm-1")
    assert uid == preferred_uid("vm-1") == Confinement(two).allocate("vm-1")
    assert Confinement(one).allocate("vm-1") == uid  # kept
    taken = preferred_uid("vm-2")
    (two / "confinement.json").write_text(json.dumps({"uids": {"other": taken}}))
    assert Confinement(two).allocate("vm-2") == UID_BASE + (taken - UID_BASE + 1) % UID_COUNT
    assert (one / "confinement.json").stat().st_mode & 0o777 == 0o600
