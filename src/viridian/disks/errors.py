"""Errors raised by :mod:`viridian.disks`.

Hierarchy (one root, so callers can catch everything the library raises)::

    DiskError
    ├── InvalidDiskArgument   a caller asked for something impossible (bad size, type, path)
    ├── DiskInUse             another program (usually QEMU) holds the image open
    ├── UnsupportedDisk       a valid file in a format or variant this library does not handle
    ├── ParentLinkError       a differencing disk's parent cannot be found or does not match
    └── CorruptDisk           the file breaks the VHD specification
        ├── BadFooter         hard disk footer: cookie, checksum, fields (spec "Hard Disk Footer")
        ├── BadDynamicHeader  dynamic disk header (VHD spec "Dynamic Disk Header")
        └── BadBlockTable     BAT entries outside the file, overlapping, too few entries

Every message names the file and what exactly is wrong; nothing raised here means a disk
was left half-changed unless the message says so.
"""

from __future__ import annotations


class DiskError(Exception):
    """Root of every error raised by viridian.disks."""


class InvalidDiskArgument(DiskError, ValueError):
    """A caller passed a value outside the allowed ones; the message lists them."""


class DiskInUse(DiskError):
    """The image is locked by another program (QEMU image locks); nothing was changed."""


class UnsupportedDisk(DiskError):
    """The file is a disk format or variant this library cannot handle."""


class ParentLinkError(DiskError):
    """A differencing disk's parent is missing, mismatched, or the chain loops."""


class CorruptDisk(DiskError):
    """The file is not a well-formed VHD."""


class BadFooter(CorruptDisk):
    """The hard disk footer is missing or malformed."""


class BadDynamicHeader(CorruptDisk):
    """The dynamic disk header is missing or malformed."""


class BadBlockTable(CorruptDisk):
    """The block allocation table is malformed or points outside the file."""
