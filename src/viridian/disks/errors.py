"""Errors raised by :mod:`viridian.disks` — the one mapped second root of viridian.

The disks package imports nothing else of viridian, so it cannot derive from
``viridian.errors.ViridianError``. Instead every class here carries the same three class
attributes as that root — ``http_status``, ``exit_code`` and ``code`` — taken from the
table in ``viridian.errors`` (and docs/api.md), so the API and the CLI translate a disk
error exactly once, by reading those attributes, and the same bad disk gives the same
status, exit code and text on every path.

Hierarchy and mapping::

    DiskError                 500 / exit 6  host_error   unexpected I/O failure of the host
    ├── InvalidDiskArgument   400 / exit 2  bad_request  a caller asked for something impossible
    │   │                                                (bad size, type, path, extension)
    │   ├── DiskNotFound      404 / exit 3  not_found    the named file (or its folder) is missing
    │   └── DiskExists        409 / exit 4  conflict     the destination already exists
    ├── DiskInUse             409 / exit 4  conflict     another program (usually QEMU) holds it
    ├── NoSpace               409 / exit 4  admission_refused
    │                                                    the file system lacks the space a fixed
    │                                                    disk needs; states needed and free bytes
    ├── UnsupportedDisk       400 / exit 2  bad_request  a valid file in a format or variant this
    │                                                    library does not handle
    ├── ParentLinkError       400 / exit 2  bad_request  a differencing disk's parent cannot be
    │                                                    found or does not match
    └── CorruptDisk           400 / exit 2  bad_request  the file breaks the VHD specification
        ├── BadFooter         hard disk footer: cookie, checksum, fields (spec "Hard Disk Footer")
        ├── BadDynamicHeader  dynamic disk header (VHD spec "Dynamic Disk Header")
        └── BadBlockTable     BAT entries outside the file, overlapping, too few entries

Why these rows: a corrupt or unsupported disk is bad *input* named by the caller, so it
takes the 400 / exit 2 row (the table has no 422); a missing file is the 404 / exit 3
row; "in use", "already exists" and "not enough space" are refusals because of the
host's current state (409 / exit 4; space short is the table's admission refusal, which
states the numbers). Only the root itself — an I/O failure nobody asked for — is a
host error (500 / exit 6); exit 1 stays reserved for bugs.

Every message names the file and what exactly is wrong; nothing raised here means a disk
was left half-changed unless the message says so.
"""

from __future__ import annotations


class DiskError(Exception):
    """Root of every error raised by viridian.disks: an unexpected host I/O failure."""

    http_status = 500
    exit_code = 6
    code = "host_error"


class InvalidDiskArgument(DiskError, ValueError):
    """A caller passed a value outside the allowed ones; the message lists them."""

    http_status = 400
    exit_code = 2
    code = "bad_request"


class DiskNotFound(InvalidDiskArgument):
    """The named file, or the folder it should be created in, does not exist."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class DiskExists(InvalidDiskArgument):
    """A new disk's path is already taken; nothing was changed."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class DiskInUse(DiskError):
    """The image is locked by another program (QEMU image locks); nothing was changed."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class NoSpace(DiskError):
    """The file system has less free space than a fixed disk needs; no file was left.

    ``needed`` and ``free`` are in bytes.
    """

    http_status = 409
    exit_code = 4
    code = "admission_refused"

    def __init__(self, message: str, needed: int, free: int) -> None:
        super().__init__(message)
        self.needed, self.free = needed, free


class UnsupportedDisk(DiskError):
    """The file is a disk format or variant this library cannot handle."""

    http_status = 400
    exit_code = 2
    code = "bad_request"


class ParentLinkError(DiskError):
    """A differencing disk's parent is missing, mismatched, or the chain loops."""

    http_status = 400
    exit_code = 2
    code = "bad_request"


class CorruptDisk(DiskError):
    """The file is not a well-formed VHD."""

    http_status = 400
    exit_code = 2
    code = "bad_request"


class BadFooter(CorruptDisk):
    """The hard disk footer is missing or malformed."""


class BadDynamicHeader(CorruptDisk):
    """The dynamic disk header is missing or malformed."""


class BadBlockTable(CorruptDisk):
    """The block allocation table is malformed or points outside the file."""
