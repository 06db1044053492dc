"""On-disk layout of VHDX files (MS-VHDX v1.0): constants, GUIDs and structures.

Only the layout lives here; the logic that uses it is in :mod:`.vhdx` (reading,
writing), :mod:`.vhdx_log` (log replay) and :mod:`.vhdx_create`. Section numbers in
comments refer to the MS-VHDX specification. All integers are little-endian; GUIDs are
stored in the Windows mixed-endian form (``uuid.UUID.bytes_le``).

Every structure checks its own signature and checksum and raises a named error (a
subclass of :class:`~.errors.CorruptDisk`) that says which structure is bad and why.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from .errors import CorruptDisk

KiB = 1024
MiB = 1024 * KiB

# -- §2.2 layout of the header section ----------------------------------------------
FILE_ID_OFFSET = 0
HEADER1_OFFSET = 64 * KiB
HEADER2_OFFSET = 128 * KiB
REGION1_OFFSET = 192 * KiB
REGION2_OFFSET = 256 * KiB
HEADER_SECTION = 1 * MiB
HEADER_SIZE = 4 * KiB
REGION_TABLE_SIZE = 64 * KiB
METADATA_TABLE_SIZE = 64 * KiB
ALIGNMENT = 1 * MiB  # §2.2: objects in the file are 1 MiB aligned
LOG_SECTOR = 4 * KiB

FILE_SIGNATURE = b"vhdxfile"
HEADER_SIGNATURE = b"head"
REGION_SIGNATURE = b"regi"
METADATA_SIGNATURE = b"metadata"
LOG_ENTRY_SIGNATURE = b"loge"
ZERO_DESC_SIGNATURE = b"zero"
DATA_DESC_SIGNATURE = b"desc"
DATA_SECTOR_SIGNATURE = b"data"

CREATOR = "viridian"
VHDX_VERSION = 1
LOG_VERSION = 0
MAX_REGION_ENTRIES = 2047
MAX_METADATA_ENTRIES = 2047

# -- §2.2.3.1 known regions, §2.6.2 known metadata items -----------------------------
BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS_GUID = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE_GUID = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83_GUID = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_GUID = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_GUID = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR_GUID = uuid.UUID("A8D35F2B-B30B-454D-ABF7-D3D84834AB0C")
VHDX_PARENT_LOCATOR_TYPE = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
KNOWN_REGIONS = (BAT_GUID, METADATA_GUID)

# §2.5.1 BAT entry states
PAYLOAD_NOT_PRESENT = 0
PAYLOAD_UNDEFINED = 1
PAYLOAD_ZERO = 2
PAYLOAD_UNMAPPED = 3
PAYLOAD_FULLY_PRESENT = 6
PAYLOAD_PARTIALLY_PRESENT = 7
SB_NOT_PRESENT = 0
SB_PRESENT = 6
PAYLOAD_STATES = {0: "not present", 1: "undefined", 2: "zero", 3: "unmapped",
                  6: "fully present", 7: "partially present"}  # fmt: skip
SECTOR_BITMAP_BLOCK = 1 * MiB  # §2.5.1.2: each sector bitmap block is 1 MiB

DEFAULT_BLOCK_SIZE = 32 * MiB
MIN_BLOCK_SIZE = 1 * MiB
MAX_BLOCK_SIZE = 256 * MiB
MAX_VIRTUAL_SIZE = 64 * 1024 * 1024 * MiB  # 64 TiB (§2.6.2.2)
DEFAULT_LOG_LENGTH = 1 * MiB

# Metadata item flags (§2.6.1.2)
META_IS_USER = 1
META_IS_VIRTUAL_DISK = 2
META_IS_REQUIRED = 4
# File parameters flags (§2.6.2.1)
FP_LEAVE_BLOCKS_ALLOCATED = 1
FP_HAS_PARENT = 2


class BadVhdxHeader(CorruptDisk):
    """The file type identifier or both VHDX headers are missing or malformed (§2.2.1-2)."""


class BadRegionTable(CorruptDisk):
    """Both region tables are malformed, or a required region is missing (§2.2.3)."""


class BadMetadata(CorruptDisk):
    """The metadata table or a required metadata item is malformed (§2.6)."""


class BadLog(CorruptDisk):
    """The log is pending but cannot be replayed (§2.3): no valid sequence, bad offsets."""


# -- CRC-32C (Castagnoli, reflected 0x82F63B78), §2.2.2 "Checksum" --------------------
def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _step_zero_byte(state: int) -> int:
    return _CRC_TABLE[state & 0xFF] ^ (state >> 8)


def _apply(matrix: tuple[int, ...], vector: int) -> int:
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _zeros_operator(count: int) -> tuple[int, ...]:
    """The GF(2) matrix that advances the CRC register over ``count`` (a power of 2) zeros."""
    matrix = tuple(_step_zero_byte(1 << i) for i in range(32))
    while count > 1:
        matrix = tuple(_apply(matrix, column) for column in matrix)
        count //= 2
    return matrix


_ZERO_RUN = 256
_ZEROS = bytes(_ZERO_RUN)
_ZERO_RUN_OPERATOR = _zeros_operator(_ZERO_RUN)


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` (continuing from ``crc``), table driven, pure Python.

    No fast CRC-32C wheel is a dependency of viridian. Checksummed structures are small
    (4 KiB headers, 64 KiB region tables, log entries) and mostly zeros: each all-zero
    256-byte run advances the register with one precomputed GF(2) operator instead of
    256 table steps, so a region table costs well under a millisecond.
    """
    table, raw = _CRC_TABLE, bytes(data)
    c = crc ^ 0xFFFFFFFF
    for start in range(0, len(raw), _ZERO_RUN):
        chunk = raw[start : start + _ZERO_RUN]
        if chunk == _ZEROS:
            c = _apply(_ZERO_RUN_OPERATOR, c)
            continue
        for b in chunk:
            c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def with_checksum(raw: bytes, at: int = 4) -> bytes:
    """``raw`` with the CRC-32C of ``raw`` (checksum field zeroed) stored at ``at``."""
    zeroed = raw[:at] + bytes(4) + raw[at + 4 :]
    return zeroed[:at] + struct.pack("<I", crc32c(zeroed)) + zeroed[at + 4 :]


def checksum_ok(raw: bytes, at: int = 4) -> bool:
    """True when the CRC-32C stored at ``at`` matches ``raw`` with that field zeroed."""
    stored = struct.unpack_from("<I", raw, at)[0]
    return bool(stored == crc32c(raw[:at] + bytes(4) + raw[at + 4 :]))


def guid_bytes(g: uuid.UUID) -> bytes:
    """A GUID as stored on disk (mixed endian)."""
    return g.bytes_le


def guid_from(raw: bytes) -> uuid.UUID:
    """A GUID read from disk (mixed endian)."""
    return uuid.UUID(bytes_le=bytes(raw))


NIL = uuid.UUID(int=0)


# -- §2.2.1 file type identifier --------------------------------------------------------
def pack_file_identifier(creator: str = CREATOR) -> bytes:
    """The 64 KiB file type identifier: signature and a UTF-16 creator (≤ 256 chars)."""
    raw = FILE_SIGNATURE + creator[:255].encode("utf-16-le")
    return raw + bytes(64 * KiB - len(raw))


def unpack_creator(raw: bytes, where: str) -> str:
    """The creator of a file type identifier; BadVhdxHeader on a bad signature."""
    if raw[:8] != FILE_SIGNATURE:
        raise BadVhdxHeader(f"{where}: file signature is {raw[:8]!r}, expected b'vhdxfile'")
    return raw[8:520].decode("utf-16-le", errors="replace").split("\0", 1)[0]


# -- §2.2.2 headers ----------------------------------------------------------------------
_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")


@dataclass(frozen=True)
class Header:
    """One of the two 4 KiB VHDX headers (§2.2.2)."""

    sequence_number: int
    file_write_guid: uuid.UUID
    data_write_guid: uuid.UUID
    log_guid: uuid.UUID = NIL
    log_length: int = DEFAULT_LOG_LENGTH
    log_offset: int = HEADER_SECTION
    log_version: int = LOG_VERSION
    version: int = VHDX_VERSION

    def pack(self) -> bytes:
        """4096 bytes with a fresh CRC-32C."""
        raw = _HEADER.pack(
            HEADER_SIGNATURE, 0, self.sequence_number, guid_bytes(self.file_write_guid),
            guid_bytes(self.data_write_guid), guid_bytes(self.log_guid), self.log_version,
            self.version, self.log_length, self.log_offset,
        )  # fmt: skip
        return with_checksum(raw + bytes(HEADER_SIZE - len(raw)))

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> Header:
        """Parse and verify a header; BadVhdxHeader names what is wrong."""
        if len(raw) < HEADER_SIZE:
            raise BadVhdxHeader(f"{where}: truncated ({len(raw)} of {HEADER_SIZE} bytes)")
        h = _HEADER.unpack_from(raw)
        if h[0] != HEADER_SIGNATURE:
            raise BadVhdxHeader(f"{where}: signature is {h[0]!r}, expected b'head'")
        if not checksum_ok(raw[:HEADER_SIZE]):
            raise BadVhdxHeader(f"{where}: CRC-32C checksum mismatch")
        if h[7] != VHDX_VERSION:
            raise BadVhdxHeader(f"{where}: version {h[7]}, expected 1")
        header = cls(
            h[2], guid_from(h[3]), guid_from(h[4]), guid_from(h[5]), h[8], h[9], h[6], h[7]
        )
        header.check_log_fields(where)
        return header

    def check_log_fields(self, where: str) -> None:
        """§2.2.2: the log is 1 MiB aligned, a 1 MiB multiple, and version 0."""
        if self.log_version != LOG_VERSION:
            raise BadVhdxHeader(f"{where}: log version {self.log_version}, expected 0")
        if self.log_offset % ALIGNMENT or self.log_length % ALIGNMENT:
            raise BadVhdxHeader(
                f"{where}: log at {self.log_offset} (+{self.log_length}) is not 1 MiB aligned"
            )
        if self.log_offset < HEADER_SECTION and self.log_length:
            raise BadVhdxHeader(f"{where}: log at {self.log_offset} overlaps the header section")


# -- §2.2.3 region table ------------------------------------------------------------------
_REGION_HEAD = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")


@dataclass(frozen=True)
class RegionEntry:
    """One region: its GUID, file offset, length, and whether readers must know it."""

    guid: uuid.UUID
    file_offset: int
    length: int
    required: bool = True


@dataclass(frozen=True)
class RegionTable:
    """The 64 KiB region table (§2.2.3)."""

    entries: tuple[RegionEntry, ...]

    def pack(self) -> bytes:
        """64 KiB with a fresh CRC-32C."""
        raw = _REGION_HEAD.pack(REGION_SIGNATURE, 0, len(self.entries), 0)
        for e in self.entries:
            raw += _REGION_ENTRY.pack(guid_bytes(e.guid), e.file_offset, e.length, int(e.required))
        return with_checksum(raw + bytes(REGION_TABLE_SIZE - len(raw)))

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> RegionTable:
        """Parse and verify; BadRegionTable on signature, checksum, count or offsets."""
        if len(raw) < REGION_TABLE_SIZE:
            raise BadRegionTable(f"{where}: truncated ({len(raw)} of 65536 bytes)")
        sig, _, count, _ = _REGION_HEAD.unpack_from(raw)
        if sig != REGION_SIGNATURE:
            raise BadRegionTable(f"{where}: signature is {sig!r}, expected b'regi'")
        if not checksum_ok(raw[:REGION_TABLE_SIZE]):
            raise BadRegionTable(f"{where}: CRC-32C checksum mismatch")
        if count > MAX_REGION_ENTRIES:
            raise BadRegionTable(f"{where}: {count} entries, at most {MAX_REGION_ENTRIES}")
        entries = []
        for i in range(count):
            g, off, length, req = _REGION_ENTRY.unpack_from(raw, 16 + 32 * i)
            entry = RegionEntry(guid_from(g), off, length, bool(req & 1))
            _check_region(entry, where)
            entries.append(entry)
        return cls(tuple(entries))

    def find(self, guid: uuid.UUID) -> RegionEntry | None:
        """The entry for ``guid``, or None."""
        return next((e for e in self.entries if e.guid == guid), None)


def _check_region(e: RegionEntry, where: str) -> None:
    if e.file_offset % ALIGNMENT or e.length % ALIGNMENT or e.file_offset < HEADER_SECTION:
        raise BadRegionTable(
            f"{where}: region {e.guid} at {e.file_offset} (+{e.length}) is not 1 MiB aligned "
            "or overlaps the header section"
        )
    if e.required and e.guid not in KNOWN_REGIONS:
        raise BadRegionTable(f"{where}: required region {e.guid} is unknown to this reader")


# -- §2.6 metadata region ---------------------------------------------------------------
_META_HEAD = struct.Struct("<8sHH20x")
_META_ENTRY = struct.Struct("<16sIIII")


@dataclass(frozen=True)
class MetadataEntry:
    """One metadata table entry (§2.6.1.2): item GUID, offset in the region, length, flags."""

    item: uuid.UUID
    offset: int
    length: int
    flags: int

    @property
    def required(self) -> bool:
        """IsRequired: a reader that does not know the item must refuse the file."""
        return bool(self.flags & META_IS_REQUIRED)


@dataclass(frozen=True)
class MetadataTable:
    """The metadata table at the start of the metadata region (§2.6.1)."""

    entries: tuple[MetadataEntry, ...]

    def pack(self) -> bytes:
        """The 64 KiB table."""
        raw = _META_HEAD.pack(METADATA_SIGNATURE, 0, len(self.entries))
        for e in self.entries:
            raw += _META_ENTRY.pack(guid_bytes(e.item), e.offset, e.length, e.flags, 0)
        return raw + bytes(METADATA_TABLE_SIZE - len(raw))

    @classmethod
    def unpack(cls, raw: bytes, region_length: int, where: str) -> MetadataTable:
        """Parse; BadMetadata on signature, count or items outside the region."""
        sig, _, count = _META_HEAD.unpack_from(raw)
        if sig != METADATA_SIGNATURE:
            raise BadMetadata(f"{where}: metadata signature is {sig!r}, expected b'metadata'")
        if count > MAX_METADATA_ENTRIES:
            raise BadMetadata(f"{where}: {count} metadata entries, at most 2047")
        entries = []
        for i in range(count):
            g, off, length, flags, _ = _META_ENTRY.unpack_from(raw, 32 + 32 * i)
            e = MetadataEntry(guid_from(g), off, length, flags)
            if length and (off < METADATA_TABLE_SIZE or off + length > region_length):
                raise BadMetadata(
                    f"{where}: metadata item {e.item} at {off} (+{length}) lies outside the "
                    f"metadata region (64 KiB .. {region_length})"
                )
            entries.append(e)
        return cls(tuple(entries))

    def find(self, item: uuid.UUID) -> MetadataEntry | None:
        """The entry for ``item``, or None."""
        return next((e for e in self.entries if e.item == item), None)


KNOWN_METADATA = (FILE_PARAMETERS_GUID, VIRTUAL_DISK_SIZE_GUID, PAGE83_GUID,
                  LOGICAL_SECTOR_GUID, PHYSICAL_SECTOR_GUID, PARENT_LOCATOR_GUID)  # fmt: skip


@dataclass(frozen=True)
class DiskParameters:
    """The required metadata items, decoded (§2.6.2.1-2.6.2.5)."""

    block_size: int
    virtual_size: int
    logical_sector: int = 512
    physical_sector: int = 4096
    page83: uuid.UUID = field(default_factory=uuid.uuid4)
    has_parent: bool = False
    leave_blocks_allocated: bool = False

    def check(self, where: str) -> DiskParameters:
        """``self`` when every value is allowed by the spec, else BadMetadata."""
        bs = self.block_size
        if not (MIN_BLOCK_SIZE <= bs <= MAX_BLOCK_SIZE and bs & (bs - 1) == 0):
            raise BadMetadata(f"{where}: block size {bs} is not a power of two, 1 .. 256 MiB")
        if self.logical_sector not in (512, 4096) or self.physical_sector not in (512, 4096):
            raise BadMetadata(
                f"{where}: sector sizes {self.logical_sector}/{self.physical_sector}, "
                "each must be 512 or 4096"
            )
        vs = self.virtual_size
        if not 0 < vs <= MAX_VIRTUAL_SIZE or vs % self.logical_sector:
            raise BadMetadata(
                f"{where}: virtual size {vs} is not a multiple of the logical sector "
                f"size up to 64 TiB"
            )
        return self

    @property
    def chunk_ratio(self) -> int:
        """Payload blocks per sector bitmap block (§2.5)."""
        return (1 << 23) * self.logical_sector // self.block_size

    @property
    def payload_blocks(self) -> int:
        """Number of payload blocks that cover the virtual size."""
        return -(-self.virtual_size // self.block_size)

    @property
    def bat_entries(self) -> int:
        """Total BAT entries, payload and sector bitmap interleaved (§2.5)."""
        cr, n = self.chunk_ratio, self.payload_blocks
        if self.has_parent:
            return -(-n // cr) * (cr + 1)
        return n + (n - 1) // cr


def pack_file_parameters(block_size: int, flags: int) -> bytes:
    """§2.6.2.1 item."""
    return struct.pack("<II", block_size, flags)


def pack_u32(value: int) -> bytes:
    """A 4-byte item (logical and physical sector size)."""
    return struct.pack("<I", value)


def pack_u64(value: int) -> bytes:
    """An 8-byte item (virtual disk size)."""
    return struct.pack("<Q", value)


# -- §2.6.2.6 parent locator ------------------------------------------------------------
_LOC_HEAD = struct.Struct("<16sHH")
_LOC_ENTRY = struct.Struct("<IIHH")


def pack_parent_locator(pairs: dict[str, str]) -> bytes:
    """A VHDX parent locator item holding ``pairs`` (UTF-16LE keys and values)."""
    head = _LOC_HEAD.pack(guid_bytes(VHDX_PARENT_LOCATOR_TYPE), 0, len(pairs))
    table_end = len(head) + _LOC_ENTRY.size * len(pairs)
    entries, blobs = b"", b""
    for key, value in pairs.items():
        k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
        koff = table_end + len(blobs)
        entries += _LOC_ENTRY.pack(koff, koff + len(k), len(k), len(v))
        blobs += k + v
    return head + entries + blobs


def unpack_parent_locator(raw: bytes, where: str) -> dict[str, str]:
    """Key/value pairs of a parent locator; BadMetadata when malformed."""
    if len(raw) < _LOC_HEAD.size:
        raise BadMetadata(f"{where}: parent locator truncated")
    kind, _, count = _LOC_HEAD.unpack_from(raw)
    if guid_from(kind) != VHDX_PARENT_LOCATOR_TYPE:
        raise BadMetadata(f"{where}: parent locator type {guid_from(kind)} is not the VHDX one")
    pairs: dict[str, str] = {}
    for i in range(count):
        off = _LOC_HEAD.size + i * _LOC_ENTRY.size
        if off + _LOC_ENTRY.size > len(raw):
            raise BadMetadata(f"{where}: parent locator entry {i} truncated")
        ko, vo, kl, vl = _LOC_ENTRY.unpack_from(raw, off)
        if ko + kl > len(raw) or vo + vl > len(raw):
            raise BadMetadata(f"{where}: parent locator entry {i} points outside the item")
        key = raw[ko : ko + kl].decode("utf-16-le", errors="replace")
        pairs[key] = raw[vo : vo + vl].decode("utf-16-le", errors="replace")
    return pairs


# -- §2.5 BAT entries ---------------------------------------------------------------------
def bat_entry(state: int, file_offset: int) -> int:
    """A 64-bit BAT entry: state in bits 0-2, FileOffsetMB in bits 20-63."""
    return state | (file_offset // MiB) << 20


def entry_state(entry: int) -> int:
    """The 3-bit state of a BAT entry."""
    return entry & 7


def entry_offset(entry: int) -> int:
    """The file offset (bytes) of a BAT entry."""
    return (entry >> 20) * MiB


# -- §2.3 log ----------------------------------------------------------------------------
_LOG_HEAD = struct.Struct("<4sIIIQII16sQQ")
_DESC = struct.Struct("<4sIQQQ")
_DATA = struct.Struct("<4sI4084sI")
LOG_HEADER_SIZE = _LOG_HEAD.size  # 64
DESCRIPTOR_SIZE = _DESC.size  # 32


@dataclass(frozen=True)
class LogEntryHeader:
    """§2.3.1.1 log entry header."""

    entry_length: int
    tail: int
    sequence_number: int
    descriptor_count: int
    log_guid: uuid.UUID
    flushed_file_offset: int
    last_file_offset: int

    def pack(self) -> bytes:
        """64 bytes, checksum zero (the entry's CRC covers the whole entry)."""
        return _LOG_HEAD.pack(
            LOG_ENTRY_SIGNATURE, 0, self.entry_length, self.tail, self.sequence_number,
            self.descriptor_count, 0, guid_bytes(self.log_guid), self.flushed_file_offset,
            self.last_file_offset,
        )  # fmt: skip

    @classmethod
    def unpack(cls, raw: bytes) -> LogEntryHeader | None:
        """The header at the start of ``raw``, or None without the b'loge' signature."""
        if len(raw) < LOG_HEADER_SIZE:
            return None
        h = _LOG_HEAD.unpack_from(raw)
        if h[0] != LOG_ENTRY_SIGNATURE:
            return None
        return cls(h[2], h[3], h[4], h[5], guid_from(h[7]), h[8], h[9])


@dataclass(frozen=True)
class Descriptor:
    """§2.3.1.2-3: a zero descriptor (``zero_length``) or a data descriptor (4 KiB)."""

    file_offset: int
    sequence_number: int
    zero_length: int = 0  # > 0: zero descriptor
    leading: bytes = bytes(8)
    trailing: bytes = bytes(4)

    @property
    def is_zero(self) -> bool:
        """True for a zero descriptor."""
        return self.zero_length > 0

    def pack(self) -> bytes:
        """32 bytes."""
        if self.is_zero:
            return _DESC.pack(ZERO_DESC_SIGNATURE, 0, self.zero_length, self.file_offset,
                              self.sequence_number)  # fmt: skip
        return _DESC.pack(
            DATA_DESC_SIGNATURE, struct.unpack("<I", self.trailing)[0],
            struct.unpack("<Q", self.leading)[0], self.file_offset, self.sequence_number,
        )  # fmt: skip

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> Descriptor:
        """Parse one descriptor; BadLog for an unknown signature."""
        sig, trailing, length_or_lead, off, seq = _DESC.unpack_from(raw)
        if sig == ZERO_DESC_SIGNATURE:
            return cls(off, seq, zero_length=length_or_lead)
        if sig == DATA_DESC_SIGNATURE:
            return cls(off, seq, leading=struct.pack("<Q", length_or_lead),
                       trailing=struct.pack("<I", trailing))  # fmt: skip
        raise BadLog(f"{where}: log descriptor signature {sig!r} is neither 'zero' nor 'desc'")


def pack_data_sector(sector: bytes, sequence_number: int) -> tuple[bytes, bytes, bytes]:
    """Split a 4 KiB ``sector`` into (data sector, leading 8, trailing 4) (§2.3.1.4)."""
    body = _DATA.pack(DATA_SECTOR_SIGNATURE, sequence_number >> 32, sector[8:4092],
                      sequence_number & 0xFFFFFFFF)  # fmt: skip
    return body, sector[:8], sector[4092:]


def unpack_data_sector(raw: bytes, desc: Descriptor) -> bytes | None:
    """The 4 KiB a data descriptor writes, or None when signature or sequence differ."""
    sig, high, data, low = _DATA.unpack_from(raw)
    if sig != DATA_SECTOR_SIGNATURE or (high << 32 | low) != desc.sequence_number:
        return None
    return bytes(desc.leading + data + desc.trailing)


def descriptor_sectors(count: int) -> int:
    """4 KiB sectors taken by an entry header and ``count`` descriptors."""
    return -(-(LOG_HEADER_SIZE + DESCRIPTOR_SIZE * count) // LOG_SECTOR)
