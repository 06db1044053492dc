"""Templates: a VM's configuration and disks kept in a library, generalised, versioned.

A template version lives in ``<library>/templates/<name>/v<N>/``: ``template.json`` (the
manifest below) and one disk file per hard disk of the source VM, copied byte for byte
(its format kept; QEMU reads it only as the read-only backing of qcow2 overlays, so it is
never written once made). Versions count from 1; ``template new`` on an existing name
adds the next version, and provisioning takes the newest unless told otherwise.

Generalisation (Sysprep's part, docs/architecture.md "Library and provisioning"): in the
configuration, what must differ per VM is reset — MAC addresses (dynamic, unassigned),
the name, DVD and floppy media, COM pipes, the checkpoint folder. In the guest, the
machine's identity (host name, SSH host keys, machine id) comes from the cloud-init seed
each provisioned VM gets (a new ``instance-id`` makes cloud-init regenerate them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from viridian.errors import BadRequest
from viridian.model import VMSettings
from viridian.model.choices import DriveKind, MacMode
from viridian.model.settings import ComPort, FloppyDrive, IdeDrive
from viridian.model.slots import hard_disks

__all__ = [
    "GENERALISED",
    "MANIFEST",
    "TemplateDisk",
    "TemplateManifest",
    "disk_file_name",
    "generalise",
    "manifest_from_json",
    "source_disks",
]

MANIFEST = "template.json"
FORMAT_VERSION = 1
GENERALISED = ("mac_addresses", "name", "dvd_media", "floppy_media", "com_pipes",
               "checkpoint_folder")
_SUFFIX = {"vpc": ".vhd", "vhdx": ".vhdx", "qcow2": ".qcow2", "raw": ".img"}


@dataclass(frozen=True)
class TemplateDisk:
    """One disk of a template: the source VM's slot (``ide:0:0``), its file inside the
    version folder, QEMU format, size in bytes and SHA-256."""

    slot: str
    file: str
    format: str
    size: int
    sha256: str


@dataclass(frozen=True)
class TemplateManifest:
    """``settings`` are the generalised settings as the API's dict (drive paths point at
    the version folder's disks)."""

    name: str
    version: int
    created_at: str
    source_vm: str
    settings: Mapping[str, Any]
    disks: tuple[TemplateDisk, ...]
    generalised: tuple[str, ...] = GENERALISED

    def to_json(self) -> str:
        return json.dumps({
            "format_version": FORMAT_VERSION, "name": self.name, "version": self.version,
            "created_at": self.created_at, "source_vm": self.source_vm,
            "settings": self.settings, "generalised": list(self.generalised),
            "disks": [vars(d) for d in self.disks]}, indent=2, sort_keys=True) + "\n"


def manifest_from_json(text: str) -> TemplateManifest:
    """The manifest in ``text``; :class:`BadRequest` for another format or a broken file."""
    try:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise BadRequest(f"template manifest format {data.get('format_version')!r} "
                             f"is unknown; this viridian reads {FORMAT_VERSION}")
        return TemplateManifest(
            data["name"], int(data["version"]), data["created_at"], data["source_vm"],
            data["settings"], tuple(TemplateDisk(**d) for d in data["disks"]),
            tuple(data["generalised"]))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BadRequest(f"template manifest is unreadable: {err}") from err


def disk_file_name(slot: str, fmt: str) -> str:
    """``ide:0:0`` + ``vpc`` → ``disk-ide-0-0.vhd``."""
    return "disk-" + slot.replace(":", "-") + _SUFFIX.get(fmt, ".img")


def generalise(settings: VMSettings, name: str) -> VMSettings:
    """``settings`` with what must differ per VM reset (:data:`GENERALISED`): adapters
    get dynamic, unassigned MACs; DVD drives are emptied; floppy, COM pipes and the
    checkpoint folder cleared; the name becomes ``name``. Hard disks are left for the
    caller to point at the template's copies."""
    return replace(
        settings, name=name, checkpoint_folder=None, floppy=FloppyDrive(),
        com1=_no_pipe(settings.com1), com2=_no_pipe(settings.com2),
        ide=tuple(_emptied(d) for d in settings.ide),
        network_adapters=tuple(replace(a, mac=None, mac_mode=MacMode.DYNAMIC)
                               for a in settings.network_adapters))


def source_disks(settings: VMSettings) -> dict[str, tuple[str, str]]:
    """Slot id → (path, format) of every hard disk image of ``settings``; a disk whose
    format is not yet resolved is refused (the service resolves formats at define)."""
    found: dict[str, tuple[str, str]] = {}
    for slot in hard_disks(settings):
        if slot.path is None or slot.format is None:
            raise BadRequest(f"{slot.label} has no resolved disk format; nothing was changed")
        found[slot.id] = (slot.path, slot.format.value)
    return found


def _emptied(drive: IdeDrive) -> IdeDrive:
    return replace(drive, path=None, format=None) if drive.kind is DriveKind.DVD else drive


def _no_pipe(port: ComPort) -> ComPort:
    return replace(port, path=None)
