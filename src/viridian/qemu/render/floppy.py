"""The floppy drive on the i440fx machine's built-in ISA floppy controller (``isa-fdc``).

Generation 1 always has the drive, so it is always rendered: ``floppy`` on unit 0,
with a raw image when a virtual floppy is inserted, empty otherwise. The ``floppy``
device has no ``bootindex`` property in QEMU 7.2; the controller's ``bootindexA``
(set with ``-global``) places drive A in the startup order instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.model import DiskFormat, VMSettings
from viridian.qemu.render.blockdev import render_blockdev
from viridian.qemu.render.naming import FLOPPY_ID, format_node
from viridian.qemu.render.options import opts


def render_floppy(settings: VMSettings, boot: Mapping[str, int]) -> list[str]:
    """The floppy drive (unit 0) and its place in the boot order."""
    path = settings.floppy.path
    args = [] if path is None else render_blockdev(FLOPPY_ID, path, DiskFormat.RAW)
    drive = None if path is None else format_node(FLOPPY_ID)
    args += ["-device", opts("floppy", unit=0, drive=drive, id=FLOPPY_ID)]
    if FLOPPY_ID in boot:
        args += ["-global", f"isa-fdc.bootindexA={boot[FLOPPY_ID]}"]
    return args
