"""Real guests from the kit under TCG on plain QEMU command lines.

The ISO boots from an IDE DVD drive, the VHD from IDE 0:0 (both in parallel); a third
guest boots with -kernel/-initrd to prove viridian.cmd, floppy config disks, save/restore
continuity of the TICK counter and the ACPI power button.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.guestkit.qemu_guest import Agent, Guest, Qmp
from viridian.guestkit import GuestImages, make_config_disk, viridian_cmd_param

pytestmark = pytest.mark.guest

ISO_MAC = "52:54:00:00:00:01"
VHD_MAC = "52:54:00:00:00:02"


def _workdir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


def _nic(mac: str, model: str) -> list[str]:
    return ["-netdev", "user,id=n0,restrict=on", "-device", f"{model},netdev=n0,mac={mac}"]


def _start_iso_guest(images: GuestImages, workdir: Path) -> Guest:
    config = make_config_disk(
        workdir / "cfg.img", "echo iso-config $((6 * 7))\ncat /sys/block/vda/size\n"
    )
    return Guest(
        workdir,
        "ISO guest",
        [
            "-drive", f"file={images.iso},if=ide,index=2,media=cdrom,format=raw,readonly=on",
            "-boot", "d",
            "-drive", f"file={config},if=virtio,format=raw",
            *_nic(ISO_MAC, "virtio-net-pci"),
        ],
    )  # fmt: skip


def _start_vhd_guest(images: GuestImages, workdir: Path) -> Guest:
    disk = workdir / "boot.vhd"
    shutil.copyfile(images.vhd, disk)  # the kit's VHD is a template
    config = make_config_disk(workdir / "cfg.img", "echo vhd-config\nexit 5\n")
    return Guest(
        workdir,
        "VHD guest",
        [
            "-drive", f"file={disk},if=ide,index=0,media=disk,format=vpc",
            "-boot", "c",
            "-drive", f"file={config},if=ide,index=1,media=disk,format=raw",
            *_nic(VHD_MAC, "tulip"),
        ],
    )  # fmt: skip


def _assert_ticks_count_up(guest: Guest) -> None:
    guest.wait_for(r"^VIRIDIAN-GUEST TICK 3 \d+$")
    ticks = [(int(n), int(ms)) for n, ms in guest.markers("TICK")[:3]]
    assert [n for n, _ in ticks] == [1, 2, 3]
    assert ticks[0][1] < ticks[1][1] < ticks[2][1]
    lines = guest.log().splitlines()
    assert lines.index("VIRIDIAN-GUEST READY") < lines.index(f"VIRIDIAN-GUEST TICK 1 {ticks[0][1]}")
    assert lines.index(f"VIRIDIAN-GUEST BOOT {guest.markers('BOOT')[0][0]}") < lines.index(
        "VIRIDIAN-GUEST READY"
    )


def _assert_common_hardware(guest: Guest) -> None:
    assert guest.markers("CPUS") == [["1"]]
    (mem_kb,) = guest.markers("MEM_KB")
    assert 150_000 < int(mem_kb[0]) <= 256 * 1024
    assert guest.markers("AGENT") == [["/dev/vport0p1"]]


def _agent_ping_and_shutdown(guest: Guest) -> None:
    agent = Agent(guest.agent_socket)
    try:
        agent.sync()
        assert agent.call("guest-ping") == {}
        agent.send("guest-shutdown")  # answers nothing on success; QEMU exits
        assert guest.wait_exit() == 0
    finally:
        agent.close()
    assert "VIRIDIAN-GUEST SHUTDOWN" in guest.log().splitlines()


def test_iso_and_vhd_guests_boot_report_run_config_and_shut_down_via_agent(
    images: GuestImages, tmp_path: Path
) -> None:
    iso = _start_iso_guest(images, _workdir(tmp_path, "iso"))
    vhd = _start_vhd_guest(images, _workdir(tmp_path, "vhd"))
    try:
        for guest in (iso, vhd):
            _assert_ticks_count_up(guest)
            _assert_common_hardware(guest)

        assert iso.markers("DISK") == [
            ["sr0", str(images.iso.stat().st_size), "QEMU_DVD-ROM"],
            ["vda", "65536", "virtio_blk"],
        ]
        assert iso.markers("NIC") == [["eth0", ISO_MAC, "virtio_net"]]
        # Both IDE disks of one channel; the kernel names them in probe order (not fixed).
        vhd_disks = vhd.markers("DISK")
        assert sorted(name for name, _, _ in vhd_disks) == ["sda", "sdb"]
        assert {(size, model) for _, size, model in vhd_disks} == {
            (str(64 * 1024 * 1024), "QEMU_HARDDISK"),
            ("65536", "QEMU_HARDDISK"),
        }
        assert vhd.markers("NIC") == [["eth0", VHD_MAC, "tulip"]]

        iso.wait_for(r"^VIRIDIAN-GUEST CFG-EXIT 0$")
        assert iso.markers("CFG") == [["iso-config", "42"], ["128"]]
        vhd.wait_for(r"^VIRIDIAN-GUEST CFG-EXIT 5$")
        assert vhd.markers("CFG") == [["vhd-config"]]

        agent = Agent(iso.agent_socket)
        try:
            agent.sync()
            status, out = agent.exec_shell("ip -o link show eth0; echo exec-ok")
        finally:
            agent.close()
        assert status == 0
        assert ISO_MAC in out and out.endswith("exec-ok\n")

        for guest in (iso, vhd):
            _agent_ping_and_shutdown(guest)
    finally:
        iso.kill()
        vhd.kill()


def _save(guest: Guest, state: Path) -> int:
    """Save the guest's memory and devices to ``state``; the last TICK it printed."""
    qmp = Qmp(guest.qmp_socket)
    try:
        qmp.call("stop")
        qmp.call("migrate", uri=f"exec:cat > {state}")
        while True:
            status = qmp.call("query-migrate")
            assert isinstance(status, dict)
            if status["status"] == "completed":
                break
            assert status["status"] in ("setup", "active", "device"), status
            time.sleep(0.05)
        last = max(int(fields[0]) for fields in guest.markers("TICK"))
        qmp.call("quit")
    finally:
        qmp.close()
    guest.wait_exit()
    return last


def _restore(state: Path, workdir: Path, args: list[str]) -> Guest:
    """A new QEMU loading ``state``, resumed (it was saved paused, so it arrives paused)."""
    guest = Guest(workdir, "restored guest", [*args, "-incoming", f"exec:cat {state}"])
    qmp = Qmp(guest.qmp_socket)
    try:
        while True:
            status = qmp.call("query-status")
            assert isinstance(status, dict)
            if status["status"] != "inmigrate":
                break
            time.sleep(0.05)
        assert status["status"] == "paused", status
        qmp.call("cont")
    finally:
        qmp.close()
    return guest


def test_direct_kernel_guest_runs_cmdline_and_floppy_config_survives_save_and_acpi_powers_off(
    images: GuestImages, tmp_path: Path
) -> None:
    floppy = make_config_disk(tmp_path / "floppy.img", "echo floppy-config", size=1474560)
    args = [
        *images.direct_boot_args([viridian_cmd_param("echo cmdline-config $(nproc)")]),
        "-smp", "2",
        "-drive", f"file={floppy},if=floppy,format=raw",
    ]  # fmt: skip
    guest = Guest(_workdir(tmp_path, "first"), "direct-kernel guest", args)
    restored = None
    try:
        guest.wait_for(r"^VIRIDIAN-GUEST TICK 2 ")
        assert guest.markers("CPUS") == [["2"]]
        assert guest.markers("DISK") == [["fd0", "1474560", "floppy"]]
        assert guest.markers("NIC") == []
        # the scripts run one after the other (floppy first), each ends with its CFG-EXIT
        guest.wait_for(r"^VIRIDIAN-GUEST CFG cmdline-config 2$(?:\n.*)*?\nVIRIDIAN-GUEST CFG-EXIT")
        assert sorted(guest.markers("CFG")) == [["cmdline-config", "2"], ["floppy-config"]]
        assert guest.markers("CFG-EXIT") == [["0"], ["0"]]

        last = _save(guest, tmp_path / "state")
        restored = _restore(tmp_path / "state", _workdir(tmp_path, "restored"), args)
        first = int(restored.wait_for(r"^VIRIDIAN-GUEST TICK (\d+) ").group(1))
        assert last < first <= last + 2  # continues; a fresh boot would print TICK 1
        assert restored.markers("BOOT") == []

        qmp = Qmp(restored.qmp_socket)
        try:
            qmp.call("system_powerdown")  # the ACPI power button
        finally:
            qmp.close()
        assert restored.wait_exit() == 0
        assert "VIRIDIAN-GUEST SHUTDOWN" in restored.log().splitlines()
    finally:
        guest.kill()
        if restored is not None:
            restored.kill()


def test_the_serial_console_has_a_shell_that_answers_what_is_typed(
    images: GuestImages, tmp_path: Path
) -> None:
    guest = Guest(tmp_path, "serial-shell guest", images.direct_boot_args(), serial_input=True)
    try:
        guest.wait_for(r"^Press Enter for a shell on this console\.$")
        guest.wait_for(r"^VIRIDIAN-GUEST TICK 2 ")
        marked = [line for line in guest.log().splitlines() if "VIRIDIAN-GUEST" in line]
        assert all(line.startswith("VIRIDIAN-GUEST ") for line in marked)  # an idle shell
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as com1:
            com1.connect(str(guest.serial_socket))
            com1.sendall(b"\r")
            guest.wait_for(r"guest:/# ")
            com1.sendall(b"echo typed-$((6 * 7)) on $(readlink /proc/$$/fd/1)\r")
            answer = guest.wait_for(r"^typed-42 on (\S+)$")
        assert answer.group(1) == "/dev/ttyS0"
    finally:
        guest.kill()
