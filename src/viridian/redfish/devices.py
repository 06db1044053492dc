"""A VM's hardware as Redfish resources: processors, memory, Ethernet interfaces, storage
(drives and volumes for its hard disks), virtual media (DVD and floppy) and BIOS
attributes. Pure functions of :class:`~viridian.redfish.systems.SystemView`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from viridian.model.choices import DriveKind
from viridian.model.slots import DriveSlot, hard_disks
from viridian.redfish.boot import TARGETS, boot_order_names
from viridian.redfish.messages import RedfishError, not_in_list
from viridian.redfish.odata import Resource, collection, link, resource
from viridian.redfish.power import status
from viridian.redfish.systems import SystemView

MEDIA_IDS = ("Cd", "Floppy")


# --- processors and memory ------------------------------------------------------------

def processors(vm: SystemView) -> Resource:
    uri = f"{vm.uri}/Processors"
    return collection("ProcessorCollection", uri, "Processors",
                      [f"{uri}/CPU{n}" for n in range(vm.settings.processor.count)])


def processor(vm: SystemView, index: int) -> Resource:
    """Virtual processor ``index`` (one core, one thread, x86-64)."""
    return resource("Processor", f"{vm.uri}/Processors/CPU{index}", f"CPU{index}",
                    f"Virtual processor {index}", ProcessorType="CPU",
                    ProcessorArchitecture="x86", InstructionSet="x86-64",
                    TotalCores=1, TotalThreads=1, Status=status(vm.state))


def memory_collection(vm: SystemView) -> Resource:
    uri = f"{vm.uri}/Memory"
    return collection("MemoryCollection", uri, "Memory", [f"{uri}/DIMM0"])


def memory(vm: SystemView) -> Resource:
    """The VM's startup memory as one module."""
    return resource("Memory", f"{vm.uri}/Memory/DIMM0", "DIMM0", "Startup memory",
                    MemoryType="DRAM", CapacityMiB=vm.settings.memory.startup_mb,
                    Status=status(vm.state))


# --- network adapters -----------------------------------------------------------------

def ethernet_interfaces(vm: SystemView) -> Resource:
    uri = f"{vm.uri}/EthernetInterfaces"
    count = len(vm.settings.network_adapters)
    return collection("EthernetInterfaceCollection", uri, "Ethernet interfaces",
                      [f"{uri}/{n}" for n in range(1, count + 1)])


def ethernet_interface(vm: SystemView, number: int) -> Resource:
    """Network adapter ``number`` (1-based, as in the API): MAC and access VLAN."""
    adapter = vm.settings.network_adapters[number - 1]
    extra: Resource = {"MACAddress": adapter.mac} if adapter.mac else {}
    return resource(
        "EthernetInterface", f"{vm.uri}/EthernetInterfaces/{number}", str(number),
        f"Network adapter {number} ({adapter.kind.value})", InterfaceEnabled=True,
        LinkStatus="LinkUp" if adapter.switch else "NoLink", Status=status(vm.state),
        VLAN={"VLANEnable": adapter.vlan_id is not None, "VLANId": adapter.vlan_id or 0},
        **extra)


# --- storage --------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskRef:
    """A hard disk's place: Storage ``IDE`` or ``SCSI<n>``, drive id ``<c>-<l>``."""

    storage: str
    drive: str
    slot: DriveSlot


def disks(vm: SystemView) -> list[DiskRef]:
    return [DiskRef("IDE" if s.bus == "ide" else f"SCSI{s.controller}",
                    f"{s.controller}-{s.location}", s) for s in hard_disks(vm.settings)]


def storage_ids(vm: SystemView) -> list[str]:
    """``IDE`` always (generation 1's two IDE controllers), then each SCSI controller."""
    return ["IDE", *(f"SCSI{c.controller}" for c in vm.settings.scsi)]


def storage_collection(vm: SystemView) -> Resource:
    uri = f"{vm.uri}/Storage"
    return collection("StorageCollection", uri, "Storage",
                      [f"{uri}/{s}" for s in storage_ids(vm)])


def storage(vm: SystemView, storage_id: str) -> Resource:
    uri = f"{vm.uri}/Storage/{storage_id}"
    drives = [f"{uri}/Drives/{d.drive}" for d in disks(vm) if d.storage == storage_id]
    return resource("Storage", uri, storage_id, f"{storage_id} controller",
                    Status=status(vm.state), Drives=[link(d) for d in drives],
                    **{"Drives@odata.count": len(drives)},
                    Volumes=link(f"{uri}/Volumes"))


def drive(vm: SystemView, ref: DiskRef) -> Resource:
    """A hard disk (``MediaType: HDD``) linked to its one volume."""
    base = f"{vm.uri}/Storage/{ref.storage}"
    where = f"{ref.slot.bus.upper()} {ref.slot.controller}:{ref.slot.location}"
    return resource("Drive", f"{base}/Drives/{ref.drive}", ref.drive, f"Hard disk {where}",
                    MediaType="HDD", Status=status(vm.state),
                    Links={"Volumes": [link(f"{base}/Volumes/{ref.drive}")]})


def volumes(vm: SystemView, storage_id: str) -> Resource:
    uri = f"{vm.uri}/Storage/{storage_id}/Volumes"
    return collection("VolumeCollection", uri, "Volumes",
                      [f"{uri}/{d.drive}" for d in disks(vm) if d.storage == storage_id])


def volume(vm: SystemView, ref: DiskRef) -> Resource:
    """The volume a hard disk image holds (one per drive, no RAID)."""
    base = f"{vm.uri}/Storage/{ref.storage}"
    return resource("Volume", f"{base}/Volumes/{ref.drive}", ref.drive,
                    f"Volume on {ref.slot.bus.upper()} {ref.slot.controller}:"
                    f"{ref.slot.location}", RAIDType="None", Status=status(vm.state),
                    Links={"Drives": [link(f"{base}/Drives/{ref.drive}")]})


# --- virtual media --------------------------------------------------------------------

def dvd_slot(vm: SystemView) -> DriveSlot | None:
    """The first DVD drive (controller:location order), the one ``Cd`` stands for."""
    dvds = sorted((d for d in vm.settings.ide if d.kind is DriveKind.DVD),
                  key=lambda d: (d.controller, d.location))
    if not dvds:
        return None
    d = dvds[0]
    return DriveSlot("ide", d.controller, d.location, d.kind, d.path, d.format)


def media_ids(vm: SystemView) -> list[str]:
    return [m for m in MEDIA_IDS if m == "Floppy" or dvd_slot(vm) is not None]


def virtual_media_collection(vm: SystemView) -> Resource:
    uri = f"{vm.uri}/VirtualMedia"
    return collection("VirtualMediaCollection", uri, "Virtual media",
                      [f"{uri}/{m}" for m in media_ids(vm)])


def media_path(vm: SystemView, media_id: str) -> str | None:
    if media_id == "Floppy":
        return vm.settings.floppy.path
    slot = dvd_slot(vm)
    return slot.path if slot else None


def virtual_media(vm: SystemView, media_id: str) -> Resource:
    """``Cd`` (the first DVD drive) or ``Floppy``; ``Image`` is null when empty."""
    uri = f"{vm.uri}/VirtualMedia/{media_id}"
    path = media_path(vm, media_id)
    image = f"file://{path}" if path else None
    return resource(
        "VirtualMedia", uri, media_id, "DVD drive" if media_id == "Cd" else "Floppy drive",
        MediaTypes=["CD", "DVD"] if media_id == "Cd" else ["Floppy"],
        Image=image, ImageName=path.rsplit("/", 1)[-1] if path else None,
        Inserted=path is not None, WriteProtected=True,
        ConnectedVia="URI" if path else "NotConnected",
        Actions={"#VirtualMedia.InsertMedia": {
                     "target": f"{uri}/Actions/VirtualMedia.InsertMedia"},
                 "#VirtualMedia.EjectMedia": {
                     "target": f"{uri}/Actions/VirtualMedia.EjectMedia"}})


def image_path(image: str) -> str | None:
    """The host path an ``Image`` URI names (``file:///…`` or an absolute path), or None
    for any other scheme."""
    if image.startswith("file://"):
        image = image[len("file://"):]
    return image if image.startswith("/") else None


# --- BIOS -----------------------------------------------------------------------------

def bios_attributes(vm: SystemView) -> dict[str, Any]:
    """The BIOS attributes the VM has now."""
    return {"NumLock": vm.settings.bios.num_lock,
            "BootOrder": ",".join(boot_order_names(vm.settings))}


def bios(vm: SystemView, applied: dict[str, Any] | None = None) -> Resource:
    """BIOS attributes: Num Lock and the startup order (Cd, Hdd, Pxe, Floppy), and the
    ``@Redfish.Settings`` link to its pending settings (applied at the next start;
    ``applied``: when and what the last pending settings were applied, if ever)."""
    settings: Resource = {"@odata.type": "#Settings.v1_4_0.Settings",
                          "SettingsObject": link(f"{vm.uri}/Bios/Settings"),
                          "SupportedApplyTimes": ["OnReset"]}
    if applied:
        settings.update(applied)
    return resource("Bios", f"{vm.uri}/Bios", "Bios", "BIOS", Attributes=bios_attributes(vm),
                    **{"@Redfish.Settings": settings})


def bios_settings(vm: SystemView, pending: dict[str, Any]) -> Resource:
    """The BIOS settings resource: the attributes the VM will have after its next start
    (its current ones with the pending changes over them)."""
    return resource("Bios", f"{vm.uri}/Bios/Settings", "Settings",
                    "BIOS settings applied at the next start",
                    Attributes={**bios_attributes(vm), **pending})


def bios_patch(attributes: dict[str, Any]) -> dict[str, Any]:
    """The settings patch (API dict shape, ``bios``) for BIOS ``attributes``.

    :raises RedfishError: an unknown attribute or a value outside the allowed ones.
    """
    unknown = sorted(set(attributes) - {"NumLock", "BootOrder"})
    if unknown:
        raise RedfishError(400, "PropertyUnknown", unknown[0],
                           detail=f"unknown BIOS attribute {unknown[0]}; allowed: NumLock, "
                                  "BootOrder; nothing was changed")
    patch: dict[str, Any] = {}
    if "NumLock" in attributes:
        if not isinstance(attributes["NumLock"], bool):
            raise not_in_list(attributes["NumLock"], "NumLock", ["true", "false"])
        patch["num_lock"] = attributes["NumLock"]
    if "BootOrder" in attributes:
        order = str(attributes["BootOrder"]).split(",")
        if sorted(order) != sorted(TARGETS):
            raise not_in_list(attributes["BootOrder"], "BootOrder",
                              ["each of Cd, Hdd, Pxe, Floppy once, comma-separated"])
        patch["startup_order"] = [TARGETS[name].value for name in order]
    return patch
