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
    grant_files,
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
    lines = GOLDEN.read_text().split("\n")  # one option and its value per line
    grants = {g.path: g for g in argv_grants([a for line in lines for a in line.split(" ", 1)
                                              if a])}
    assert grants["/srv/vms/full_gen1/system.vhd"] == FileGrant(
        "/srv/vms/full_gen1/system.vhd", 6)
    assert grants["/srv/vms/full_gen1/tools.iso"].perm == 4  # read-only=on
    assert grants["/srv/vms/full_gen1/com2.sock"].creates
    # Files QEMU only reads are granted read-only: a read-write grant takes a regular
    # file's "other" permissions, which once made the host's /boot/ipxe.lkrn 0660.
    assert grants["/usr/lib/ipxe/ipxe.lkrn"].perm == 4  # -fw_cfg file=
    assert grants["/var/lib/viridian/run/netboot-tulip.rom"].perm == 4  # romfile=
    kernel = argv_grants(["qemu", "-kernel", "/boot/k", "-initrd", "/boot/i", "-pidfile",
                          "/run/vm/qemu.pid"])
    assert kernel == [FileGrant("/boot/i", 4), FileGrant("/boot/k", 4),
                      FileGrant("/run/vm/qemu.pid", 6, creates=True)]
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


def qcow2_chain(folder: Path) -> tuple[Path, Path, Path]:
    """base.qcow2 ← mine.qcow2 (the VM's disk) ← top.qcow2 (a checkpoint's overlay)."""
    base, mine, top = folder / "base.qcow2", folder / "vm" / "mine.qcow2", folder / "vm" / "t.qcow2"
    mine.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1M"], check=True)
    for image, below in ((mine, base), (top, mine)):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(below),
                        "-F", "qcow2", str(image)], check=True)
    for image in (base, mine, top):
        os.chmod(image, 0o600)
    return base, mine, top


def user_entry(path: Path, uid: int) -> int | None:
    return next((e.perm for e in acl.read(path) if e.tag == acl.USER and e.id == uid), None)


def test_backing_files_are_read_only_unless_the_vm_writes_them(open_folder: Path) -> None:
    """A shared base (a template's) is ``r`` for each VM; the VM's own disk below its
    checkpoint overlay stays ``rw`` (deleting the checkpoint merges into it)."""
    base, mine, top = qcow2_chain(open_folder)
    data = open_folder / "data"
    data.mkdir()
    confinement = Confinement(data)
    one, two = confinement.allocate("vm-one"), confinement.allocate("vm-two")
    confinement.own("vm-one", [mine.parent])
    given = grant_files([FileGrant(str(top), 6)], Identity(one), None,
                        confinement.writes("vm-one"))
    assert set(given) == {str(top), str(mine), str(base)}
    assert (user_entry(top, one), user_entry(mine, one), user_entry(base, one)) == (6, 6, 4)
    grant_files([FileGrant(str(mine), 4)], Identity(two), None, confinement.writes("vm-two"))
    assert (user_entry(mine, two), user_entry(base, two)) == (4, 4)
    assert user_entry(base, one) == 4  # the other VM's grant changed nothing of one's


def test_revoke_release_and_sweep_take_entries_and_uids_back(open_folder: Path) -> None:
    """Detached disk: its entry and its backing files' go, unless a remaining disk still
    reads them; removed VM: every entry and its uid (the kernel refuses it after)."""
    base, mine, top = qcow2_chain(open_folder)
    iso = open_folder / "media.iso"
    iso.write_bytes(b"iso")
    os.chmod(iso, 0o600)
    data = open_folder / "data"
    data.mkdir()
    confinement = Confinement(data)
    uid = confinement.allocate("vm-1")
    confinement.own("vm-1", [mine.parent])
    confinement.record_grants("vm-1", grant_files(
        [FileGrant(str(top), 6), FileGrant(str(iso), 4)], Identity(uid), None,
        confinement.writes("vm-1")))
    reader = ["setpriv", f"--reuid={uid}", f"--regid={GID}", "--clear-groups", "cat"]
    assert subprocess.run([*reader, str(iso)], capture_output=True).returncode == 0
    assert confinement.revoke("vm-1", [str(iso)]) == [str(iso)]
    refused = subprocess.run([*reader, str(iso)], capture_output=True, text=True)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert confinement.revoke("vm-1", [str(top)], keep=[str(mine)]) == [str(top)]
    assert user_entry(top, uid) is None and user_entry(mine, uid) == 6
    assert user_entry(base, uid) == 4  # still read through mine

    other = Confinement(data).allocate("vm-2")
    confinement.record_grants("vm-2", grant_files([FileGrant(str(mine), 6)],
                                                  Identity(other), None))
    assert sorted(confinement.release("vm-1")) == [str(base), str(mine)]
    assert user_entry(mine, uid) is None and user_entry(base, uid) is None
    record = json.loads((data / "confinement.json").read_text())
    assert "vm-1" not in record["uids"] and "vm-1" not in record.get("granted", {})
    assert confinement.sweep(["vm-3"]) == ["vm-2"]  # vm-2 is gone from the catalog
    assert user_entry(mine, other) is None and user_entry(base, other) is None
    assert json.loads((data / "confinement.json").read_text())["uids"] == {}


def test_a_chmod_above_a_vms_files_is_repaired_and_shared_media_outlive_one_vm(
        open_folder: Path) -> None:
    """A shared ISO and a disk in a root-only (0700) folder, as pytest's temp folders are:
    a ``chmod 700`` of that folder (what each pytest session does to its base) cuts the
    VMs' traversal; :meth:`Confinement.repair` gives it back, and releasing one VM leaves
    the other its access to the shared ISO."""
    private = open_folder / "private"
    private.mkdir(mode=0o700)
    iso, disk = private / "kit.iso", private / "disk.raw"
    for path in (iso, disk):
        path.write_bytes(b"x")
        os.chmod(path, 0o600)
    data = open_folder / "data"
    data.mkdir()
    confinement = Confinement(data)
    one, two = confinement.allocate("vm-1"), confinement.allocate("vm-2")
    confinement.record_grants("vm-1", grant_files(
        [FileGrant(str(iso), 4), FileGrant(str(disk), 6)], Identity(one), None))
    confinement.record_grants("vm-2", grant_files([FileGrant(str(iso), 4)], Identity(two),
                                                  None))

    def reads(uid: int, path: Path) -> bool:
        cat = ["setpriv", f"--reuid={uid}", f"--regid={GID}", "--clear-groups", "cat"]
        return subprocess.run([*cat, str(path)], capture_output=True).returncode == 0

    assert reads(one, disk) and reads(one, iso) and reads(two, iso)
    os.chmod(private, 0o700)  # the ACL mask becomes ---: named entries count for nothing
    assert not reads(one, disk) and not reads(two, iso)
    assert confinement.repair("vm-1") == [str(disk)]  # the first path's repair was the folder's
    assert reads(one, disk) and reads(two, iso)  # traversal is the shared group's
    assert confinement.repair("vm-1") == [] and confinement.repair("vm-2") == []
    os.chmod(disk, 0o600)  # a chmod of the file itself: its mask, too
    assert not reads(one, disk)
    assert confinement.repair("vm-1") == [str(disk)] and reads(one, disk)

    confinement.release("vm-1")
    assert not reads(one, iso) and reads(two, iso)  # the ISO stays the other VM's
    assert os.stat(private).st_mode & 0o777 == 0o710  # traversal only, never listing


def test_confinement_is_the_default_and_a_host_that_cannot_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """No host.json: confined. A host that cannot confine (no setpriv, not root) runs
    QEMU unconfined with the reason logged and shown — unless the admin set
    ``confine_qemu: true``, which refuses the start naming the reason and the way out."""
    from viridian.cli.output import format_confinement
    from viridian.errors import HostError, InvalidSetting
    from viridian.service.server import choose_confinement, load_host_settings

    monkeypatch.delenv("VIRIDIAN_CONFINE_QEMU", raising=False)
    setting = load_host_settings(tmp_path)["confine_qemu"]
    confinement, reason = choose_confinement(tmp_path, setting, None)
    assert isinstance(confinement, Confinement) and reason is None
    blocker = "setpriv (Debian package util-linux) is not installed"
    assert choose_confinement(tmp_path, setting, blocker) == (None, blocker)
    assert "run unconfined" in caplog.text and blocker in caplog.text
    assert format_confinement({"confine_qemu": False, "reason": blocker}) == f"no: {blocker}"
    with pytest.raises(HostError) as refused:
        choose_confinement(tmp_path, True, blocker)
    assert blocker in str(refused.value) and '"confine_qemu": false' in str(refused.value)
    assert choose_confinement(tmp_path, False, None) == (None, None)

    (tmp_path / "host.json").write_text(json.dumps({"confine_qemu": "yes"}))
    with pytest.raises(InvalidSetting) as wrong:
        load_host_settings(tmp_path)
    assert "confine_qemu" in str(wrong.value) and "true, false" in str(wrong.value)
    monkeypatch.setenv("VIRIDIAN_CONFINE_QEMU", "0")
    (tmp_path / "host.json").write_text(json.dumps({"confine_qemu": True}))
    assert load_host_settings(tmp_path)["confine_qemu"] is False
