"""On-disk layout of VHD files: constants and the two fixed-size structures.

Only the layout lives here (Virtual Hard Disk Image Format Specification v1.0, 2006); the
logic that uses it is in :mod:`.vhd`.
All integers are big-endian.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field, replace

from .errors import BadDynamicHeader, BadFooter

SECTOR = 512
FOOTER_SIZE = 512
HEADER_SIZE = 1024
FOOTER_COOKIE = b"conectix"
HEADER_COOKIE = b"cxsparse"
FILE_FORMAT_VERSION = 0x00010000
HEADER_VERSION = 0x00010000
ALL_ONES_64 = 0xFFFFFFFFFFFFFFFF
UNALLOCATED = 0xFFFFFFFF
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z as a unix time (spec: "Time Stamp")

FEATURE_TEMPORARY = 0x1
FEATURE_RESERVED = 0x2  # spec: "must always be set"

DISK_FIXED = 2
DISK_DYNAMIC = 3
DISK_DIFFERENCING = 4
DISK_TYPE_NAMES = {DISK_FIXED: "fixed", DISK_DYNAMIC: "dynamic", DISK_DIFFERENCING: "differencing"}

CREATOR_APP = b"win "  # notes §0.4: QEMU honours current_size only for known creators
# Creators whose disks readers size by ``current_size``; every other creator (Virtual PC's
# "vpc ", old QEMU's "qemu", disk2vhd's "d2v\0", VirtualBox's "vbox", ...) is sized by its
# CHS geometry, as Virtual PC and QEMU 7.2's vpc driver do (checked with qemu-img info).
CURRENT_SIZE_CREATORS = frozenset({b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"})
MAX_GEOMETRY_SECTORS = 65535 * 16 * 255  # a disk this large is sized by current_size
CREATOR_VERSION = 0x000A0000
CREATOR_HOST_OS = b"Wi2k"

DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
MIN_BLOCK_SIZE = 512
MAX_BLOCK_SIZE = 256 * 1024 * 1024
MAX_VIRTUAL_SIZE = 0xFF000000 * SECTOR  # 2040 GiB, QEMU's VHD_MAX_SECTORS (notes §1.4)

PLATFORM_NONE = 0
PLATFORM_W2RU = 0x57327275  # relative path, UTF-16LE
PLATFORM_W2KU = 0x57326B75  # absolute path, UTF-16LE
PLATFORM_MACX = 0x4D616358  # file URL, UTF-8
LOCATOR_COUNT = 8

_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427s")
_HEADER = struct.Struct(">8sQQIIII16sI4s512s192s256s")
_LOCATOR = struct.Struct(">IIIIQ")
assert _FOOTER.size == FOOTER_SIZE and _HEADER.size == HEADER_SIZE and _LOCATOR.size == 24


def vhd_checksum(buf: bytes, field_offset: int) -> int:
    """One's complement of the byte sum of ``buf`` with the 4-byte checksum field as zero."""
    total = sum(buf) - sum(buf[field_offset : field_offset + 4])
    return ~total & 0xFFFFFFFF


def chs_geometry(size: int) -> tuple[int, int, int]:
    """Cylinders, heads, sectors per track for ``size`` bytes (spec appendix "CHS Calculation")."""
    ts = min(size // SECTOR, 65535 * 16 * 255)
    if ts >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = ts // spt
    else:
        spt = 17
        cth = ts // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = ts // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = ts // spt
    return cth // heads, heads, spt


def bitmap_size(block_size: int) -> int:
    """Bytes of the sector bitmap in front of each block, padded to a sector (spec §"Block")."""
    raw = -(-block_size // (SECTOR * 8))
    return -(-raw // SECTOR) * SECTOR


@dataclass(frozen=True)
class Footer:
    """The 512-byte hard disk footer (spec "Hard Disk Footer Format")."""

    disk_type: int
    current_size: int
    original_size: int
    data_offset: int
    unique_id: bytes
    timestamp: int
    geometry: tuple[int, int, int]
    features: int = FEATURE_RESERVED
    creator_app: bytes = CREATOR_APP
    creator_version: int = CREATOR_VERSION
    creator_host_os: bytes = CREATOR_HOST_OS
    saved_state: int = 0
    reserved: bytes = field(default=bytes(427), repr=False)
    checksum_ok: bool = True

    def pack(self) -> bytes:
        """Serialise with a freshly computed checksum."""
        c, h, s = self.geometry
        raw = _FOOTER.pack(
            FOOTER_COOKIE, self.features, FILE_FORMAT_VERSION, self.data_offset, self.timestamp,
            self.creator_app, self.creator_version, self.creator_host_os, self.original_size,
            self.current_size, c, h, s, self.disk_type, 0, self.unique_id, self.saved_state,
            self.reserved,
        )  # fmt: skip
        return raw[:64] + vhd_checksum(raw, 64).to_bytes(4, "big") + raw[68:]

    def resized(self, size: int) -> Footer:
        """The same footer for a new current size (geometry recomputed, original kept).

        The creator becomes ours ("win "), so every reader sizes the grown disk by
        ``size`` exactly: a geometry-sized creator would make QEMU see it rounded down.
        """
        return replace(
            self, current_size=size, geometry=chs_geometry(size), creator_app=CREATOR_APP
        )

    @property
    def sized_by_geometry(self) -> bool:
        """True when readers size this disk by its CHS geometry, not ``current_size``.

        QEMU's vpc driver rule: geometry unless the creator is in CURRENT_SIZE_CREATORS
        or the geometry is the largest one (65535/16/255).
        """
        c, h, s = self.geometry
        return self.creator_app not in CURRENT_SIZE_CREATORS and c * h * s != MAX_GEOMETRY_SECTORS

    @property
    def visible_size(self) -> int:
        """The virtual size readers see: CHS size (capped at ``current_size``) or current size.

        The cap only matters for a geometry larger than the data area, which no known
        producer writes; reading past the data area would be reading the footer.
        """
        if not self.sized_by_geometry:
            return self.current_size
        c, h, s = self.geometry
        return min(c * h * s * SECTOR, self.current_size)

    @classmethod
    def unpack(cls, buf: bytes, where: str) -> Footer:
        """Parse a footer; raises BadFooter naming ``where`` on a bad cookie or length.

        A bad checksum is not raised here: it is recorded in ``checksum_ok`` so callers
        can fall back to the other copy.
        """
        if len(buf) != FOOTER_SIZE:
            raise BadFooter(f"{where}: footer is truncated ({len(buf)} of 512 bytes)")
        f = _FOOTER.unpack(buf)
        if f[0] != FOOTER_COOKIE:
            raise BadFooter(f"{where}: footer cookie is {f[0]!r}, expected b'conectix'")
        stored = int.from_bytes(buf[64:68], "big")
        return cls(
            disk_type=f[13], current_size=f[9], original_size=f[8], data_offset=f[3],
            unique_id=f[15], timestamp=f[4], geometry=(f[10], f[11], f[12]), features=f[1],
            creator_app=f[5], creator_version=f[6], creator_host_os=f[7], saved_state=f[16],
            reserved=f[17], checksum_ok=stored == vhd_checksum(buf, 64),
        )  # fmt: skip

    @property
    def type_name(self) -> str:
        """ "fixed", "dynamic" or "differencing" (or "type N" for anything else)."""
        return DISK_TYPE_NAMES.get(self.disk_type, f"type {self.disk_type}")

    @property
    def uuid(self) -> uuid.UUID:
        """The unique id as a UUID (bytes stored as-is, like every other tool)."""
        return uuid.UUID(bytes=self.unique_id)


@dataclass(frozen=True)
class Locator:
    """One parent locator entry (spec "Parent Locator Entry")."""

    platform: int = PLATFORM_NONE
    data_space: int = 0
    data_length: int = 0
    data_offset: int = 0

    def space_bytes(self) -> int | None:
        """Reserved bytes, by blktap's heuristic: <512 means sectors, a 512 multiple bytes."""
        if self.data_space < SECTOR:
            return self.data_space * SECTOR
        return self.data_space if self.data_space % SECTOR == 0 else None


@dataclass(frozen=True)
class DynamicHeader:
    """The 1024-byte dynamic disk header (spec "Dynamic Disk Header Format")."""

    table_offset: int
    max_table_entries: int
    block_size: int
    parent_unique_id: bytes = bytes(16)
    parent_timestamp: int = 0
    parent_name: str = ""
    locators: tuple[Locator, ...] = (Locator(),) * LOCATOR_COUNT
    checksum_ok: bool = True

    def pack(self) -> bytes:
        """Serialise with a freshly computed checksum."""
        locs = b"".join(
            _LOCATOR.pack(lo.platform, lo.data_space, lo.data_length, 0, lo.data_offset)
            for lo in self.locators
        )
        raw = _HEADER.pack(
            HEADER_COOKIE, ALL_ONES_64, self.table_offset, HEADER_VERSION, self.max_table_entries,
            self.block_size, 0, self.parent_unique_id, self.parent_timestamp, bytes(4),
            self.parent_name.encode("utf-16-be")[:512], locs, bytes(256),
        )  # fmt: skip
        return raw[:36] + vhd_checksum(raw, 36).to_bytes(4, "big") + raw[40:]

    @classmethod
    def unpack(cls, buf: bytes, where: str) -> DynamicHeader:
        """Parse a header; raises BadDynamicHeader on a bad cookie, length or block size."""
        if len(buf) != HEADER_SIZE:
            raise BadDynamicHeader(f"{where}: dynamic header is truncated ({len(buf)} of 1024)")
        h = _HEADER.unpack(buf)
        if h[0] != HEADER_COOKIE:
            raise BadDynamicHeader(f"{where}: header cookie is {h[0]!r}, expected b'cxsparse'")
        bs = h[5]
        if not (MIN_BLOCK_SIZE <= bs <= MAX_BLOCK_SIZE and bs & (bs - 1) == 0):
            raise BadDynamicHeader(
                f"{where}: block size {bs} is not a power of two between 512 and 256 MiB"
            )
        locs = tuple(
            Locator(p, sp, ln, off)
            for p, sp, ln, _, off in (_LOCATOR.unpack_from(h[11], i * 24) for i in range(8))
        )
        name = h[10].decode("utf-16-be", errors="replace").split("\0", 1)[0]
        stored = int.from_bytes(buf[36:40], "big")
        return cls(
            table_offset=h[2], max_table_entries=h[4], block_size=bs, parent_unique_id=h[7],
            parent_timestamp=h[8], parent_name=name, locators=locs,
            checksum_ok=stored == vhd_checksum(buf, 36),
        )  # fmt: skip
