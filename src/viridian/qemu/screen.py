"""The VM's screen as a PNG: QMP ``screendump`` to a PPM file, converted in pure Python.

QEMU runs sandboxed and writes the dump itself, so the file goes into the VM's own
runtime folder; it is read, converted and removed here. PPM: Netpbm ``P6`` (binary RGB,
maxval 255, as QEMU's ``ppm_save`` writes it). PNG: RFC 2083 / ISO 15948 — signature,
IHDR (8-bit truecolour), one zlib-compressed IDAT with filter type 0 per row, IEND,
each chunk with its CRC-32.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from .errors import QemuError
from .monitor import Monitor
from .runtime_paths import RuntimePaths

__all__ = ["Image", "parse_ppm", "png_bytes", "screenshot_png"]

SCREEN_DUMP_NAME = "screen.ppm"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Image:
    """RGB pixels, ``width * height * 3`` bytes, rows top to bottom."""

    def __init__(self, width: int, height: int, rgb: bytes) -> None:
        if len(rgb) != width * height * 3:
            raise QemuError(f"image data is {len(rgb)} bytes, expected {width * height * 3}")
        self.width, self.height, self.rgb = width, height, rgb


def parse_ppm(data: bytes) -> Image:
    """Decode a binary PPM (P6, maxval 255). Raises :class:`QemuError` for anything else."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise QemuError("the screen dump is not a complete PPM header")
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields
    if magic != b"P6" or maxval != b"255" or not width.isdigit() or not height.isdigit():
        raise QemuError(f"the screen dump is not a P6 PPM with maxval 255: {fields!r}")
    w, h = int(width), int(height)
    return Image(w, h, data[pos + 1 : pos + 1 + w * h * 3])


def png_bytes(image: Image, level: int = 6) -> bytes:
    """Encode ``image`` as PNG (8-bit RGB, no interlace)."""
    stride = image.width * 3
    raw = b"".join(
        b"\x00" + image.rgb[row * stride : (row + 1) * stride] for row in range(image.height)
    )
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


async def screenshot_png(monitor: Monitor, paths: RuntimePaths) -> bytes:
    """The VM's screen now, as PNG bytes.

    :raises MonitorError: QEMU could not dump the screen.
    :raises QemuError: the dump was unreadable.
    """
    dump = paths.folder / SCREEN_DUMP_NAME
    try:
        await monitor.execute("screendump", {"filename": str(dump)})
        return png_bytes(parse_ppm(_read(dump)))
    finally:
        dump.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise QemuError(f"cannot read the screen dump {path}: {err.strerror}") from err
