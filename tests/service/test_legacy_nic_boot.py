"""Network boot through the legacy adapter, seen on the VM's screen (issue 4).

A VM whose startup order puts the network first, with a legacy adapter on user-mode
networking and the guest kit's ISO in the DVD drive: the BIOS starts iPXE through
viridian's tulip ROM; iPXE opens the adapter (the screen shows its MAC), gets a DHCP
lease through it (QEMU's user-mode DHCP hands out 10.0.2.15), finds no boot file and
gives up; the BIOS goes on to the DVD and the guest boots (READY on COM1).

The screen is read from `vm screenshot` PNGs: QEMU draws VGA text mode with the VGA
BIOS's 8x16 font, so each 9x16 (or 8x16) cell is matched against that font's glyphs.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, Service, act
from viridian.qemu.netboot import IPXE_KERNEL

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not IPXE_KERNEL.is_file(), reason="Debian package ipxe is not installed"),
]

VGA_BIOS = Path("/usr/share/seabios/vgabios-stdvga.bin")
#: iPXE's autoboot says this only once DHCP configured the adapter and named no boot file
#: (iPXE usr/autoboot.c, ``netboot``: a failed DHCP ends "No configuration methods succeeded")
NO_BOOT_FILE = "Nothing to boot"
SLICE_S = 0.25  # of guest run time between two screenshots (iPXE's screen lasts longer)
GLYPH_A = bytes.fromhex("000010386cc6c6fec6c6c6c600000000")  # 'A' of the IBM VGA 8x16 font


def _font() -> dict[bytes, str]:
    """Glyph bitmap (16 rows of 8 bits) → printable ASCII character."""
    data = VGA_BIOS.read_bytes()
    base = data.find(GLYPH_A) - ord("A") * 16
    assert base >= 0, f"no 8x16 font found in {VGA_BIOS}"
    glyphs = {data[base + c * 16 : base + c * 16 + 16]: chr(c) for c in range(126, 32, -1)}
    glyphs[bytes(16)] = " "
    return glyphs


def _pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB rows of an 8-bit RGB PNG whose rows all use filter 0."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    assert header[8:10] == b"\x08\x02", "expected 8-bit RGB"
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    assert all(raw[y * stride] == 0 for y in range(height)), "expected filter 0 rows"
    return width, height, b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))


def screen_text(png: bytes, font: dict[bytes, str]) -> str:
    """The text of an 80-column VGA text screen ('?' for cells that match no glyph)."""
    width, height, rgb = _pixels(png)
    cell_w, rows = width // 80, height // 16

    def pixel(x: int, y: int) -> bytes:
        return rgb[(y * width + x) * 3 : (y * width + x) * 3 + 3]

    lines = []
    for row in range(rows):
        chars = []
        for col in range(80):
            x0, y0 = col * cell_w, row * 16
            background = pixel(x0 + cell_w - 1, y0)  # the 9th (or last) column is blank
            glyph = bytes(sum(0x80 >> i for i in range(8) if pixel(x0 + i, y0 + j) != background)
                          for j in range(16))
            chars.append(font.get(glyph, "?"))
        lines.append("".join(chars).rstrip())
    return "\n".join(lines)


def _link_local(mac: str) -> str:
    """The IPv6 link-local address iPXE shows for an adapter (modified EUI-64 of its MAC,
    RFC 4291 appendix A), as iPXE writes it: ``fe80::215:5dff:fe00:100``."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def test_the_network_first_vm_tries_ipxe_on_the_legacy_adapter_then_boots_the_dvd(
    service: Service, api: httpx.Client, guest_iso: Path
) -> None:
    created = api.post("/vms", json={
        "name": "pxe", "memory_mb": 256, "processors": 1, "dvd": str(guest_iso),
        "settings": {"bios": {"startup_order": ["net", "cd", "ide", "floppy"]},
                     "network_adapters": [{"kind": "legacy", "switch": "user"}]}})
    assert created.status_code == 201, created.text
    act(api, "pxe", "start")
    mac = api.get("/vms/pxe").json()["settings"]["network_adapters"][0]["mac"].lower()
    console, font, seen = Console(service.data_dir, created.json()["id"]), _font(), ""
    deadline = time.monotonic() + 600  # a safety net for a hung guest
    while b"VIRIDIAN-GUEST BOOT" not in console.read() and time.monotonic() < deadline:
        # The guest runs in slices of at most SLICE_S and is paused while its screen is
        # read: on a loaded host a screenshot can take longer than iPXE's whole run, and
        # a guest left running would get past iPXE's screen between two of them.
        act(api, "pxe", "pause")
        shot = api.get("/vms/pxe/screenshot")
        assert shot.status_code == 200, shot.text
        seen += screen_text(shot.content, font) + "\n"
        act(api, "pxe", "resume")
        if "10.0.2.15" in seen or NO_BOOT_FILE in seen:
            break
        time.sleep(SLICE_S)
    # iPXE's early lines can be gone from the screen before a screenshot sees them (a slice
    # runs on while the pause request is served); its last lines stay until the guest's
    # own output scrolls them away, and they tell the same story
    assert "iPXE" in seen or "No more network devices" in seen, seen[-2000:]
    assert mac in seen or _link_local(mac) in seen, seen[-2000:]  # it opened the adapter
    assert "10.0.2.15" in seen or NO_BOOT_FILE in seen, seen[-2000:]  # and got a lease
    console.wait_for(b"VIRIDIAN-GUEST READY", timeout=180)  # then the DVD booted
