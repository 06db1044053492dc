"""Reading a VMware ``.vmx`` configuration into the import plan of a foreign VM (pure).

A ``.vmx`` holds ``key = "value"`` lines (``#`` comments; keys are case-insensitive).
What is read: ``displayName``, ``memsize`` (MB), ``numvcpus``, ``guestOS`` (noted),
every ``ideN:M``/``scsiN:M``/``sataN:M`` device that is present (``fileName``,
``deviceType``: ``*-hardDisk``/``disk`` images, ``cdrom-image`` ISO, ``cdrom-raw``/
``atapi-cdrom`` host drives — empty DVD drives here), and every present ``ethernetN``
(``virtualDev``, ``networkName``, a ``static`` address or the ``generatedAddress``).
Floppies, serial and parallel ports, sound, USB and other devices that are present are
listed as not mapped (docs/architecture.md, "Export and import").
"""

from __future__ import annotations

import re

from viridian.errors import BadRequest
from viridian.interchange.foreign_plan import ForeignVM
from viridian.interchange.ovf import OvfDrive, OvfNic, OvfSystem

LINE = re.compile(r'^\s*([A-Za-z0-9_.:\-]+)\s*=\s*"(.*)"\s*$')
DEVICE = re.compile(r"^(ide|scsi|sata|nvme)(\d+):(\d+)\.")
NIC = re.compile(r"^ethernet(\d+)\.")
OTHER = re.compile(r"^(floppy\d+|serial\d+|parallel\d+|sound|usb|usb_xhci|ehci|vmci0|"
                   r"pcibridge\d+)\.present$")
CD_TYPES = ("cdrom-image", "cdrom-raw", "atapi-cdrom")


def parse_vmx(text: str, where: str = "the .vmx file") -> ForeignVM:
    """The VM described by the ``.vmx`` ``text``.

    :raises BadRequest: a line that is not ``key = "value"`` (nor a comment), or no
        ``config.version``/``virtualHW.version`` (not a VMware configuration).
    """
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            raise BadRequest(f"{where} line {number} is not key = \"value\": {line[:80]!r}; "
                             "nothing was changed")
        keys[match.group(1).lower()] = match.group(2)
    if "config.version" not in keys and "virtualhw.version" not in keys:
        raise BadRequest(f"{where} is not a VMware configuration (no config.version or "
                         "virtualHW.version); nothing was changed")
    return _Vmx(keys).read()


class _Vmx:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.notes: list[str] = []

    def present(self, prefix: str) -> bool:
        return self.keys.get(f"{prefix}.present", "true").lower() in ("true", "1", "yes")

    def read(self) -> ForeignVM:
        keys = self.keys
        if "guestos" in keys:
            self.notes.append(f"guest OS {keys['guestos']!r} (guestOS) is not kept")
        drives = self._drives()
        nics, macs = self._nics()
        for key in sorted(keys):
            match = OTHER.match(key)
            if match and self.present(key.rsplit(".", 1)[0]):
                self.notes.append(f"{match.group(1)} is not mapped")
        system = OvfSystem(keys.get("displayname") or "imported", _int(keys.get("memsize")),
                           _int(keys.get("numvcpus")) or 1,
                           tuple(drives), tuple(nics), tuple(self.notes))
        return ForeignVM("vmware", system, tuple(macs))

    def _drives(self) -> list[OvfDrive]:
        devices = sorted({m.group(0)[:-1] for k in self.keys if (m := DEVICE.match(k))},
                         key=_device_order)
        drives: list[OvfDrive] = []
        for device in devices:
            bus, controller, location = _device_order(device)
            if not self.present(device) or not self.present(f"{bus}{controller}"):
                continue
            kind = self.keys.get(f"{device}.devicetype", "").lower()
            name = self.keys.get(f"{device}.filename")
            if bus == "nvme":
                self.notes.append(f"NVMe device {device} ({name}) is not mapped")
            elif kind in CD_TYPES or (name or "").lower().endswith(".iso"):
                image = name if kind == "cdrom-image" or kind == "" else None
                if kind in ("cdrom-raw", "atapi-cdrom"):
                    self.notes.append(f"{device}: host CD drive {name!r} → empty DVD drive")
                drives.append(OvfDrive("dvd", bus, controller, location, image, None, None))
            elif name:
                drives.append(OvfDrive("hard_disk", bus, controller, location, name,
                                       "vmdk", None))
            else:
                self.notes.append(f"{device} ({kind or 'no type'}) has no file: left out")
        return drives

    def _nics(self) -> tuple[list[OvfNic], list[str | None]]:
        numbers = sorted({int(m.group(1)) for k in self.keys if (m := NIC.match(k))})
        nics: list[OvfNic] = []
        macs: list[str | None] = []
        for number in numbers:
            prefix = f"ethernet{number}"
            if not self.present(prefix):
                continue
            nics.append(OvfNic(self.keys.get(f"{prefix}.virtualdev", "vlance"),
                               self.keys.get(f"{prefix}.networkname")
                               or self.keys.get(f"{prefix}.connectiontype")))
            how = self.keys.get(f"{prefix}.addresstype", "generated").lower()
            mac = self.keys.get(f"{prefix}.address") if how == "static" else \
                self.keys.get(f"{prefix}.generatedaddress")
            macs.append(mac)
        return nics, macs


def _device_order(device: str) -> tuple[str, int, int]:
    match = re.match(r"^([a-z]+)(\d+):(\d+)", device)
    assert match is not None
    return match.group(1), int(match.group(2)), int(match.group(3))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
