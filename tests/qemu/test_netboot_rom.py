"""The legacy adapter's boot ROM: its layout, its source, its rendering, and a real boot.

The real boot runs bare QEMU (TCG) with a tulip on user-mode networking, the ROM, iPXE
in fw_cfg and a command line that makes iPXE fetch a URL from an HTTP server on this host
(10.0.2.2 is the host in QEMU's user-mode network): the request arriving proves that the
BIOS called the ROM, the ROM started iPXE and iPXE drove the tulip to DHCP and TCP.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from viridian.errors import HostError
from viridian.model import VMSettings, settings_from_dict
from viridian.qemu import netboot
from viridian.qemu.netboot import (
    FW_CFG_CMDLINE,
    FW_CFG_KERNEL,
    IPXE_KERNEL,
    netboot_rom,
    write_netboot_rom,
)
from viridian.qemu.render.bios import boot_indexes
from viridian.qemu.render.netboot import render_netboot
from viridian.qemu.runtime_paths import RuntimePaths

SOURCE = Path(netboot.__file__).with_name("netboot_rom.S")


def _word(rom: bytes, offset: int) -> int:
    return int.from_bytes(rom[offset : offset + 2], "little")


def test_the_rom_is_a_pci_option_rom_for_the_tulip_with_a_boot_entry() -> None:
    rom = netboot_rom()
    assert len(rom) == 1024 and rom[:3] == b"\x55\xaa\x02" and sum(rom) % 256 == 0
    pcir, pnp = _word(rom, 0x18), _word(rom, 0x1A)
    assert rom[pcir : pcir + 4] == b"PCIR"
    assert (_word(rom, pcir + 4), _word(rom, pcir + 6)) == (0x1011, 0x0019)
    assert rom[pcir + 0x0F] == 0x02 and _word(rom, pcir + 0x10) == 2  # network; 2 blocks
    assert rom[pnp : pnp + 4] == b"$PnP" and sum(rom[pnp : pnp + 32]) % 256 == 0
    bev, product = _word(rom, pnp + 0x1A), _word(rom, pnp + 0x10)
    assert 0 < bev < 1024 and rom[product:].startswith(b"Legacy Network Adapter (iPXE)\0")
    other = netboot_rom(0x8086, 0x100E)
    assert (_word(other, pcir + 4), _word(other, pcir + 6)) == (0x8086, 0x100E)
    assert sum(other) % 256 == 0


@pytest.mark.skipif(shutil.which("as") is None, reason="GNU as (binutils) is not installed")
def test_the_embedded_bytes_are_the_assembled_source(tmp_path: Path) -> None:
    subprocess.run(["as", "--32", "-o", str(tmp_path / "rom.o"), str(SOURCE)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "rom.o"),
                    str(tmp_path / "rom.bin")], check=True)
    assert (tmp_path / "rom.bin").read_bytes() == netboot._CODE


def _settings(order: list[str], kinds: list[str]) -> VMSettings:
    adapters = [{"kind": kind, "switch": "user", "mac": f"00:15:5D:00:00:0{i}"}
                for i, kind in enumerate(kinds)]
    return settings_from_dict({"name": "n", "bios": {"startup_order": order},
                               "network_adapters": adapters})


def test_the_rom_and_ipxe_are_rendered_only_for_a_legacy_adapter() -> None:
    paths = RuntimePaths(Path("/d/run/5f1d0000-0000-4000-8000-000000000001"))
    order = ["cd", "net", "ide", "floppy"]
    for kinds, expected in ((["legacy"], True), (["synthetic", "legacy"], True),
                            (["synthetic"], False), ([], False)):
        settings = _settings(order, kinds)
        assert bool(render_netboot(settings, boot_indexes(settings), paths)) == expected, kinds
    settings = _settings(order, ["legacy"])
    assert render_netboot(settings, boot_indexes(settings), paths) == [
        "-global", "tulip.romfile=/d/run/netboot-tulip.rom",
        "-fw_cfg", f"name={FW_CFG_KERNEL},file={IPXE_KERNEL}"]


def test_writing_the_rom_needs_ipxe_and_says_which_package(tmp_path: Path) -> None:
    paths = RuntimePaths(tmp_path / "run" / "5f1d0000-0000-4000-8000-000000000001")
    with pytest.raises(HostError) as refused:
        write_netboot_rom(paths, kernel=tmp_path / "missing.lkrn")
    assert "install the Debian package ipxe" in str(refused.value)
    assert not (tmp_path / "run" / "netboot-tulip.rom").exists()
    kernel = tmp_path / "ipxe.lkrn"
    kernel.write_bytes(b"x")
    assert write_netboot_rom(paths, kernel=kernel).read_bytes() == netboot_rom()


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []
    arrived = threading.Event()

    def do_GET(self) -> None:
        _Recorder.seen.append((self.path, self.headers.get("User-Agent", "")))
        _Recorder.arrived.set()
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.guest
@pytest.mark.skipif(not IPXE_KERNEL.is_file(), reason="Debian package ipxe is not installed")
def test_the_bios_boots_ipxe_through_the_tulip_rom(http_server: HTTPServer,
                                                   tmp_path: Path) -> None:
    rom = tmp_path / "netboot-tulip.rom"
    rom.write_bytes(netboot_rom())
    port = http_server.server_address[1]
    script = f"dhcp net0 && chain http://10.0.2.2:{port}/via-tulip"
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "128", "-nodefaults",
         "-display", "none", "-vga", "std", "-boot", "strict=on",
         "-netdev", "user,id=net0",
         "-device", "tulip,netdev=net0,mac=00:15:5d:00:00:42,bootindex=0",
         "-global", f"tulip.romfile={rom}",
         "-fw_cfg", f"name={FW_CFG_KERNEL},file={IPXE_KERNEL}",
         "-fw_cfg", f"name={FW_CFG_CMDLINE},string={script.replace(',', ',,')}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        arrived = _Recorder.arrived.wait(120)  # a safety net for a hung guest
    finally:
        qemu.kill()
        qemu.wait()
    assert arrived, "iPXE never reached the host through the tulip"
    path, agent = _Recorder.seen[0]
    assert path == "/via-tulip" and agent.startswith("iPXE/"), _Recorder.seen
