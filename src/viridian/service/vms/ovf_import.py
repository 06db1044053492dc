"""``vm import x.ovf|x.ova``: an OVF package (DMTF DSP0243) becomes a new VM (a new id),
Off. An OVA (one tar file, §5.3) is first unpacked safely by
:mod:`viridian.interchange.ova` into the staging folder (nothing outside it is
written; a failure or a killed service removes it all).

The manifest ``x.mf`` beside the descriptor, when present, is checked first (SHA-1 and
SHA-256); the virtual hardware is mapped by :mod:`viridian.interchange.ovf_settings`
(what could not be mapped is in the result's ``unmapped``); every disk (VMDK of any
subformat, streamOptimized included, or any image QEMU reads) is converted to a dynamic
VHD by ``qemu-img`` and ISOs are copied, all into a staging folder that is committed like
a copied import (:mod:`viridian.service.vms.importing`): fault points
``import.copied`` (before the VM's commit: nothing registered, staging swept at the next
start) and ``import.committed`` (after it: the folder sweep finishes the rename). A
descriptor whose references name nothing (``OvfSystem.broken``) is refused.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from viridian.errors import BadRequest, NotFound
from viridian.interchange.foreign_plan import normal_mac
from viridian.interchange.manifest import verify_manifest
from viridian.interchange.native import DISKS_FOLDER, relocated_prefix
from viridian.interchange.ova import MAX_DESCRIPTOR, unpack_ova
from viridian.interchange.ovf import OvfNic, parse_ovf
from viridian.interchange.ovf_settings import map_system
from viridian.interchange.relocate import relocate_settings
from viridian.model import VMSettings, to_dict
from viridian.model.choices import DriveKind, MacMode
from viridian.model.slots import drive_slots, map_drives
from viridian.model.states import VMState
from viridian.service.catalog import VMRecord
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job, now_iso
from viridian.service.vms.definition_file import Definition, write_definition
from viridian.service.vms.importing import Registrar, check_free
from viridian.service.vms.macs import macs_in_use
from viridian.service.vms.package_files import (
    StagingJournal,
    copy_sparse,
    publish,
    run,
    sync_folder,
)

OVA_FOLDER = "ova"  # where an OVA is unpacked inside the staging folder


async def import_ovf(core: Registrar, journal: StagingJournal, package: Path,
                     name: str | None, job: Job) -> dict[str, Any]:
    """Import the OVF package whose descriptor is ``package`` or the OVA ``package``
    (see the module docstring); the result is the vm object plus ``unmapped`` and
    ``checked_files``."""
    if not package.is_file():
        raise NotFound(f"{package} does not exist; nothing was changed", path=str(package))
    vm_id = str(uuid.uuid4())
    final = core.data_dir / "vms" / vm_id
    staging = final.with_name(f".new-{vm_id}")
    journal.begin(staging, "import", vm_id)
    committed = False
    try:
        staging.mkdir(mode=0o700)
        descriptor = package
        if package.suffix.lower() == ".ova":
            job.report(2, f"unpacking {package.name}")
            unpacked = staging / OVA_FOLDER
            unpacked.mkdir()
            descriptor = unpack_ova(package, unpacked,
                                    lambda member: job.report(5, f"unpacking {member}"))
        if descriptor.stat().st_size > MAX_DESCRIPTOR:
            raise BadRequest(f"{descriptor} holds {descriptor.stat().st_size} bytes, more "
                             f"than an OVF descriptor may ({MAX_DESCRIPTOR}); nothing was "
                             "changed", path=str(descriptor))
        manifest = descriptor.with_suffix(".mf")
        checked = verify_manifest(manifest) if manifest.is_file() else []
        system = parse_ovf(descriptor.read_bytes(), str(package))
        if system.broken:
            raise BadRequest(f"{package} is not a valid OVF package: "
                             f"{'; '.join(system.broken)}; nothing was changed",
                             problems=list(system.broken))
        vm_name = name or system.name
        check_free(core.catalog, vm_id, vm_name)
        mapped = map_system(system, vm_name)
        kept, notes = kept_macs(mapped.settings, system.nics,
                                macs_in_use(core.catalog.list_vms(), None))
        settings = await _converted(kept, descriptor.parent, staging, job)
        if descriptor.parent != package.parent:
            shutil.rmtree(descriptor.parent)  # the unpacked OVA: its disks are converted
        checked_settings = core.checked_registration(vm_id, vm_name, to_dict(settings))
        settings = relocate_settings(checked_settings, relocated_prefix(str(staging),
                                                                        str(final)))
        write_definition(staging, Definition(vm_id, vm_name, now_iso(), to_dict(settings)))
        sync_folder(staging)
        fault("import.copied")
        live = core.register_record(VMRecord(vm_id, vm_name, settings, VMState.OFF, None,
                                             str(final), now_iso()))
        committed = True
        fault("import.committed")
        publish(staging, final)
    except BaseException:
        if not committed:
            journal.discard(staging)
        raise
    journal.end(staging)
    write_definition(final, Definition.of(live.record))
    return {**live.to_dict(), "mode": "ova" if package != descriptor else "ovf",
            "unmapped": [*mapped.unmapped, *notes], "checked_files": checked,
            "notices": []}


def kept_macs(settings: VMSettings, nics: tuple[OvfNic, ...],
              used: Mapping[str, str]) -> tuple[VMSettings, list[str]]:
    """``settings`` whose adapters keep the MAC address the package gives them (as a
    static MAC) when no registered VM uses it; otherwise the adapter gets a new address,
    noted."""
    adapters = list(settings.network_adapters)
    notes: list[str] = []
    for index, nic in enumerate(nics[:len(adapters)]):
        mac = normal_mac(nic.address)
        if mac is None:
            continue
        if mac in used:
            notes.append(f"adapter {index + 1}: MAC {mac} of the package is used by "
                         f"{used[mac]}: a new address is assigned")
            continue
        adapters[index] = replace(adapters[index], mac_mode=MacMode.STATIC, mac=mac)
    return replace(settings, network_adapters=tuple(adapters)), notes


async def _converted(settings: VMSettings, package: Path, staging: Path,
                     job: Job) -> VMSettings:
    """``settings`` with each package file replaced by its copy in ``staging``: disks
    converted to dynamic VHDs, ISOs copied."""
    made: dict[str, str] = {}
    for slot in [s for s in drive_slots(settings) if s.path]:
        assert slot.path is not None
        if slot.path in made:
            continue
        source = package / slot.path
        if "/" in slot.path or not source.is_file():
            raise BadRequest(f"the package names {slot.path!r} for {slot.label}, which is not "
                             f"a file beside the descriptor in {package}; nothing was changed")
        target = staging / DISKS_FOLDER / (Path(slot.path).stem + ".vhd")
        target.parent.mkdir(exist_ok=True)
        job.report(10 + 70 * len(made) / 4, f"converting {slot.path}")
        if slot.kind is DriveKind.DVD:
            target = target.with_name(slot.path)
            await copy_sparse(source, target)
        else:
            await run("qemu-img", "convert", "-q", "-O", "vpc", "-o",
                      "subformat=dynamic,force_size=on", str(source), str(target))
        made[slot.path] = str(target)
    return map_drives(settings, lambda s: replace(s, path=made[s.path], format=None)
                      if s.path in made else s)
