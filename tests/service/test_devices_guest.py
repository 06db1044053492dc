"""Every device kind, proven from inside real guests (TCG), through the service and the CLI.

One guest carries most checks (boot report, hot plug, media changes, COM pipe console,
screen, Num Lock, refusals while running); two more boot in parallel to show that the
BIOS startup order decides what boots. Guest-side commands run through the guest agent
(``POST /vms/{ref}/integration/exec``).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act

pytestmark = pytest.mark.guest

MB = 1024 * 1024
DVD_SECTOR = 2048


# --- helpers ----------------------------------------------------------------------------


def run_cli(
    service: Service, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=None if stdin is None else stdin.decode(),
    )


def cli_ok(service: Service, *args: str) -> str:
    done = run_cli(service, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_refused(service: Service, exit_code: int, *args: str) -> str:
    done = run_cli(service, *args)
    assert done.returncode == exit_code, (done.returncode, done.stdout, done.stderr)
    return done.stderr


def guest_sh(api: httpx.Client, vm: str, script: str) -> tuple[int, bytes]:
    reply = api.post(
        f"/vms/{vm}/integration/exec", json={"argv": ["/bin/sh", "-c", script], "timeout_s": 30}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["exit_code"], base64.b64decode(body["stdout_b64"])


def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy (guest-side effects are async)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.3)


def block_sizes(api: httpx.Client, vm: str) -> dict[str, int]:
    """name → bytes of every sd*/sr* block device the guest has now."""
    code, out = guest_sh(
        api,
        vm,
        "for b in /sys/block/sd* /sys/block/sr*; do "
        "[ -e $b ] && echo ${b##*/} $(cat $b/size); done",
    )
    assert code == 0
    return {
        name: int(sectors) * 512
        for name, sectors in (line.split() for line in out.decode().splitlines())
    }


def disk_report(console: Console) -> list[tuple[str, int, str]]:
    found = re.findall(rb"VIRIDIAN-GUEST DISK (\S+) (\d+) (\S+)", console.read())
    return [(n.decode(), int(b), m.decode()) for n, b, m in found]


def nic_report(console: Console) -> list[tuple[str, str, str]]:
    found = re.findall(rb"VIRIDIAN-GUEST NIC (\S+) (\S+) (\S+)", console.read())
    return [(n.decode(), mac.decode().upper(), drv.decode()) for n, mac, drv in found]


def raw_image(path: Path, size: int, marker: bytes = b"") -> str:
    with open(path, "wb") as image:
        image.write(marker)
        image.truncate(size)
    return str(path)


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Decode an 8-bit RGB, filter-0 PNG (what the service writes): width, height, rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    idat = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks[kind] = body
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * 3)
    return width, height, raw


# --- one guest, many devices -----------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path, guest_iso: Path) -> dict[str, str]:
    """Disks with distinct sizes (so the guest's report says which is which) and media
    with distinct first bytes."""
    made = {
        "ide00": raw_image(tmp_path / "ide00.raw", 9 * MB),
        "ide01": raw_image(tmp_path / "ide01.raw", 10 * MB),
        "scsi03": raw_image(tmp_path / "scsi03.raw", 11 * MB),
        "scsi05": raw_image(tmp_path / "scsi05.raw", 13 * MB),
        "dvd_one": raw_image(tmp_path / "one.iso", 4 * DVD_SECTOR, b"DVD-ONE"),
        "dvd_two": raw_image(tmp_path / "two.iso", 6 * DVD_SECTOR, b"DVD-TWO"),
        "floppy_two": raw_image(tmp_path / "two.vfd", 1_474_560, b"FLOPPY-TWO"),
        "iso": str(guest_iso),
    }
    made["floppy"] = str(tmp_path / "blank.vfd")
    return made


def test_devices_are_seen_by_the_guest_and_change_while_it_runs(
    service: Service, api: httpx.Client, images: dict[str, str]
) -> None:
    # Defined while Off, through the CLI.
    cli_ok(service, "vm", "new", "dev", "--memory", "256MB", "--dvd", images["iso"])
    cli_ok(service, "disk", "new", images["floppy"], "--floppy")
    assert Path(images["floppy"]).stat().st_size == 1_474_560
    for args in (
        ["--controller", "ide", "--location", "0:0", "--path", images["ide00"]],
        ["--controller", "ide", "--location", "0:1", "--path", images["ide01"]],
        ["--controller", "ide", "--location", "1:1", "--dvd", "--path", images["dvd_one"]],
        ["--controller", "scsi", "--location", "0:3", "--path", images["scsi03"]],
    ):
        cli_ok(service, "vm", "disk", "add", "dev", *args)
    cli_ok(service, "vm", "floppy", "insert", "dev", images["floppy"])
    cli_ok(service, "vm", "nic", "add", "dev", "--switch", "user")
    cli_ok(service, "vm", "nic", "add", "dev", "--mac", "00-15-5d-aa-bb-01")
    cli_ok(service, "vm", "nic", "add", "dev", "--legacy")
    cli_ok(service, "vm", "com", "set", "dev", "2", "--pipe", "default")
    cli_ok(service, "vm", "set", "dev", "--numlock", "on")
    vm = api.get("/vms/dev").json()
    macs = [a["mac"] for a in vm["settings"]["network_adapters"]]
    assert macs[0].startswith("00:15:5D:") and macs[1] == "00:15:5D:AA:BB:01"
    assert macs[2].startswith("00:15:5D:") and macs[2] != macs[0]
    console = Console(service.data_dir, vm["id"])

    act(api, "dev", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY")

    # The boot report: IDE disks, both DVD drives, the SCSI disk, the floppy, three NICs.
    disks = disk_report(console)
    sizes = sorted((size, model) for _, size, model in disks)
    assert (9 * MB, "QEMU_HARDDISK") in sizes and (10 * MB, "QEMU_HARDDISK") in sizes
    assert (11 * MB, "QEMU_HARDDISK") in sizes  # SCSI 0:3
    assert (4 * DVD_SECTOR, "QEMU_DVD-ROM") in sizes  # IDE 1:1 with dvd_one
    assert sum(1 for _, _, model in disks if model == "QEMU_DVD-ROM") == 2
    assert ("fd0", 1_474_560, "floppy") in disks
    nics = nic_report(console)
    assert sorted((mac, driver) for _, mac, driver in nics) == sorted(
        [(macs[0], "virtio_net"), (macs[1], "virtio_net"), (macs[2], "tulip")]
    )

    # Num Lock: the BIOS keyboard flags (INT 16h AH=02h) as Linux saved them at boot.
    code, out = guest_sh(api, "dev", "od -A n -t x1 -j 491 -N 1 /sys/kernel/boot_params/data")
    assert code == 0 and int(out.strip(), 16) & 0x20, out

    # Hardware rules while it runs, each refusal with its reason.
    spare = raw_image(Path(images["ide00"]).with_name("spare.raw"), MB)
    err = cli_refused(
        service,
        4,
        "vm",
        "disk",
        "add",
        "dev",
        "--controller",
        "ide",
        "--location",
        "1:0",
        "--path",
        spare,
    )
    assert "IDE 1:0 is already used by a DVD drive" in err
    err = cli_refused(
        service, 4, "vm", "disk", "remove", "dev", "--controller", "ide", "--location", "0:1"
    )
    assert "removing the hard disk at IDE 0:1 needs the VM Off" in err
    assert "allowed while it runs: adding and removing SCSI hard disks" in err
    err = cli_refused(
        service,
        4,
        "vm",
        "disk",
        "add",
        "dev",
        "--controller",
        "scsi",
        "--location",
        "1:0",
        "--path",
        spare,
    )
    assert "adding SCSI controller 1 needs the VM Off" in err
    err = cli_refused(
        service,
        4,
        "vm",
        "disk",
        "add",
        "dev",
        "--controller",
        "scsi",
        "--location",
        "0:3",
        "--path",
        spare,
    )
    assert "SCSI 0:3 is already used by the hard disk" in err
    err = cli_refused(
        service,
        2,
        "vm",
        "disk",
        "add",
        "dev",
        "--controller",
        "scsi",
        "--location",
        "0:4",
        "--dvd",
        "--path",
        images["dvd_two"],
    )
    assert "DVD drives attach to IDE only" in err
    err = cli_refused(service, 4, "vm", "nic", "add", "dev")
    assert "cannot change network_adapters of VM 'dev' while it is Running" in err
    before = block_sizes(api, "dev")

    # SCSI hot add: the guest sees a new 13 MB disk; hot remove: the 11 MB disk goes.
    cli_ok(
        service,
        "vm",
        "disk",
        "add",
        "dev",
        "--controller",
        "scsi",
        "--location",
        "0:5",
        "--path",
        images["scsi05"],
    )
    eventually(lambda: 13 * MB in block_sizes(api, "dev").values(), "hot-added disk seen")
    cli_ok(service, "vm", "disk", "remove", "dev", "--controller", "scsi", "--location", "0:3")
    eventually(lambda: 11 * MB not in block_sizes(api, "dev").values(), "hot-removed disk gone")
    scsi = api.get("/vms/dev").json()["settings"]["scsi"]
    assert [d["location"] for d in scsi[0]["disks"]] == [5]
    assert len(block_sizes(api, "dev")) == len(before)

    # DVD: change the medium of IDE 1:1 while running, then eject it.
    def dvd_marker() -> bytes:
        _, out = guest_sh(
            api,
            "dev",
            "for d in /dev/sr*; do dd if=$d bs=2048 count=1 2>/dev/null | head -c 7; echo; done",
        )
        return out

    assert b"DVD-ONE" in dvd_marker()
    cli_ok(service, "vm", "dvd", "insert", "dev", images["dvd_two"], "--location", "1:1")
    eventually(
        lambda: b"DVD-TWO" in dvd_marker() and b"DVD-ONE" not in dvd_marker(), "new DVD seen"
    )
    cli_ok(service, "vm", "dvd", "eject", "dev", "--location", "1:1")
    eventually(lambda: b"DVD-" not in dvd_marker(), "DVD ejected")
    assert api.get("/vms/dev").json()["settings"]["ide"][3]["path"] is None

    # Floppy: insert an image with a marker, read it in the guest, eject.
    cli_ok(service, "vm", "floppy", "insert", "dev", images["floppy_two"])

    def floppy_marker() -> bytes:
        _, out = guest_sh(api, "dev", "dd if=/dev/fd0 bs=512 count=1 2>/dev/null | head -c 10")
        return out

    eventually(lambda: floppy_marker() == b"FLOPPY-TWO", "floppy read in the guest")
    cli_ok(service, "vm", "floppy", "eject", "dev")
    eventually(lambda: floppy_marker() == b"", "floppy ejected")

    # COM2 named pipe through the service's console bridge, both directions.
    guest_sh(
        api,
        "dev",
        "stty -F /dev/ttyS1 raw -echo; "
        "(head -c 5 /dev/ttyS1 > /tmp/com2.in) </dev/null >/dev/null 2>&1 &",
    )
    attached = _ConsoleSession(service, "dev", 2)
    try:
        eventually(
            lambda: (
                guest_sh(api, "dev", "echo HELLO-COM2 > /dev/ttyS1")[0] == 0
                and b"HELLO-COM2" in attached.output()
            ),
            "guest output on the console",
        )
        attached.send(b"PING!")
        eventually(
            lambda: guest_sh(api, "dev", "cat /tmp/com2.in")[1] == b"PING!",
            "console input read by the guest",
        )
    finally:
        attached.detach()
    assert attached.returncode == 0, attached.stderr
    err = cli_refused(service, 4, "vm", "console", "dev", "--com", "1")
    assert "COM1 of VM 'dev' is not connected" in err

    # The screen: a PNG that decodes and is not one flat colour (the guest shows text).
    shot = Path(images["ide00"]).with_name("screen.png")
    cli_ok(service, "vm", "screenshot", "dev", str(shot))
    width, height, rows = png_pixels(shot.read_bytes())
    assert width >= 320 and height >= 200
    stride = 1 + width * 3
    pixels = b"".join(rows[r * stride + 1 : (r + 1) * stride] for r in range(height))
    background = pixels[:3]
    text_pixels = sum(1 for i in range(0, len(pixels), 3) if pixels[i : i + 3] != background)
    assert text_pixels > width, "the screen is blank"

    # Save and restore keep the hot-plugged devices (the guest continues, no reboot).
    act(api, "dev", "save")
    act(api, "dev", "start")
    assert 13 * MB in block_sizes(api, "dev").values()
    assert b"VIRIDIAN-GUEST BOOT" not in console.read()


class _ConsoleSession:
    """``viridian vm console`` as a subprocess whose output is collected in a thread."""

    def __init__(self, service: Service, vm: str, port: int) -> None:
        env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "viridian.cli.main", "vm", "console", vm, "--com", str(port)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._out = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.returncode: int | None = None
        self.stderr = b""

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(4096):  # type: ignore[attr-defined]
            self._out += chunk

    def output(self) -> bytes:
        return self._out

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def detach(self) -> None:
        self.send(b"\x1d")
        _, self.stderr = self.process.communicate(timeout=30)
        self.returncode = self.process.returncode


# --- boot order ------------------------------------------------------------------------------


def test_startup_order_decides_whether_the_dvd_or_the_disk_boots(
    service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path
) -> None:
    from viridian.guestkit import build

    ids = {}
    for name, order in (("cd-first", "cd,ide,net,floppy"), ("ide-first", "ide,net,cd,floppy")):
        disk = tmp_path / f"{name}.vhd"
        shutil.copyfile(build().vhd, disk)
        created = api.post(
            "/vms", json={"name": name, "memory_mb": 192, "dvd": str(guest_iso), "vhd": str(disk)}
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
        cli_ok(service, "vm", "set", name, "--boot-order", order)
        cli_ok(service, "vm", "nic", "add", name, "--legacy")
    listener = socket.create_server(("127.0.0.1", 0))
    received = _Collector(listener)
    cli_ok(
        service,
        "vm",
        "com",
        "set",
        "cd-first",
        "2",
        "--remote",
        f"127.0.0.1:{listener.getsockname()[1]}",
    )
    jobs = [api.post(f"/vms/{name}/start").json() for name in ids]
    for job in jobs:
        while job["state"] in ("queued", "running"):
            job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
        assert job["state"] == "completed", job
    for name, loader, image in (
        ("cd-first", b"ISOLINUX", b"BOOT_IMAGE=/boot/vmlinuz"),
        ("ide-first", b"SYSLINUX", b"BOOT_IMAGE=/vmlinuz"),
    ):
        console = Console(service.data_dir, ids[name])
        log = console.wait_for(b"VIRIDIAN-GUEST READY")
        assert loader in log and (b"ISOLINUX" if loader == b"SYSLINUX" else b"SYSLINUX") not in log
        code, cmdline = guest_sh(api, name, "cat /proc/cmdline")
        assert code == 0 and image in cmdline.split()[0:1] + cmdline.split(), cmdline
        # Num Lock is off unless set: the BIOS flag byte has bit 5 clear.
        _, flags = guest_sh(api, name, "od -A n -t x1 -j 491 -N 1 /sys/kernel/boot_params/data")
        assert not int(flags.strip(), 16) & 0x20
    shown = cli_ok(service, "vm", "show", "cd-first")
    assert 'Network boot: iPXE where the startup order says "net"' in shown
    assert f"Attachment: remote 127.0.0.1:{listener.getsockname()[1]}" in shown

    # COM2 of cd-first is a "remote computer" pipe: QEMU connected to our TCP listener.
    guest_sh(api, "cd-first", "stty -F /dev/ttyS1 raw -echo; echo REMOTE-COM2 > /dev/ttyS1")
    eventually(lambda: b"REMOTE-COM2" in received.data, "guest output at the remote end")
    listener.close()


class _Collector(threading.Thread):
    """Accepts one TCP connection and collects what arrives."""

    def __init__(self, listener: socket.socket) -> None:
        super().__init__(daemon=True)
        self.listener, self.data = listener, b""
        self.start()

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while chunk := conn.recv(4096):
                self.data += chunk
