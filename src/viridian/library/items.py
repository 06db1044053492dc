"""What a library holds: kinds and formats of files, told from their names and first bytes.

A library (docs/architecture.md, "Library and provisioning") is a storage path the admin
registered; every regular file below it is an *item*: an ISO, a hard disk (VHD, VHDX,
qcow2 or raw), a cloud-init snippet, or a file of a template version
(``templates/<name>/v<N>/``). Formats are decided by the files' own signatures (VHD
footer "conectix", VHDX "vhdxfile", qcow2 "QFI\\xfb", ISO 9660 "CD001" at 32769), never by
the name alone: a ``.vhd`` that is raw is indexed as raw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from viridian.errors import InvalidSetting

__all__ = [
    "ItemKind",
    "LibraryItem",
    "check_item_name",
    "check_library_name",
    "format_from_signature",
    "kind_of",
]

TEMPLATES_FOLDER = "templates"
ISO_SIGNATURE_OFFSET = 32769  # ECMA-119 8.1: volume descriptor at sector 16, "CD001" at +1
SNIPPET_SUFFIXES = (".yaml", ".yml", ".cfg")
DISK_SUFFIXES = (".vhd", ".vhdx", ".qcow2", ".img", ".raw")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ITEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class ItemKind(StrEnum):
    ISO = "iso"
    DISK = "disk"
    SNIPPET = "snippet"
    TEMPLATE = "template"
    OTHER = "other"


@dataclass(frozen=True)
class LibraryItem:
    """One indexed file: ``name`` is its path relative to the library, ``sha256`` its
    checksum (hex), ``uses`` who uses it (``"VM 'web1' (IDE 0:0)"``, ``"template 'base' v1"``)."""

    library: str
    name: str
    path: str
    kind: ItemKind
    format: str
    size: int
    sha256: str
    uses: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"library": self.library, "name": self.name, "path": self.path,
                "kind": self.kind.value, "format": self.format, "size": self.size,
                "sha256": self.sha256, "uses": list(self.uses)}


def kind_of(relative: str, fmt: str) -> ItemKind:
    """The kind of the item at ``relative`` (a POSIX path inside its library) whose
    signature gave format ``fmt``."""
    if relative.split("/", 1)[0] == TEMPLATES_FOLDER:
        return ItemKind.TEMPLATE
    lower = relative.lower()
    if fmt == "iso":
        return ItemKind.ISO
    if fmt in ("vpc", "vhdx", "qcow2") or lower.endswith(DISK_SUFFIXES):
        return ItemKind.DISK
    if lower.endswith(SNIPPET_SUFFIXES):
        return ItemKind.SNIPPET
    return ItemKind.OTHER


def format_from_signature(head: bytes, footer: bytes, iso_magic: bytes) -> str:
    """QEMU's driver name for a file whose first bytes are ``head``, last 512 bytes
    ``footer`` and bytes at :data:`ISO_SIGNATURE_OFFSET` ``iso_magic``: ``vhdx``,
    ``qcow2``, ``vpc`` (VHD, fixed or dynamic), ``iso`` or ``raw``."""
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"conectix") or footer.startswith(b"conectix"):
        return "vpc"
    if iso_magic == b"CD001":
        return "iso"
    return "raw"


def check_library_name(name: str) -> str:
    """``name`` if it is a valid library or template name, else :class:`InvalidSetting`."""
    if not _NAME.fullmatch(name):
        raise InvalidSetting("name", name, "1..128 characters of A-Z a-z 0-9 . _ -, "
                             "starting with a letter or digit")
    return name


def check_item_name(name: str) -> str:
    """``name`` if it is a valid file name for an upload (no folders), else
    :class:`InvalidSetting`."""
    if not _ITEM.fullmatch(name) or name.endswith(".partial"):
        raise InvalidSetting("name", name, "a file name of 1..255 characters of A-Z a-z "
                             "0-9 . _ - (no folders), starting with a letter or digit, "
                             "not ending in .partial")
    return name
