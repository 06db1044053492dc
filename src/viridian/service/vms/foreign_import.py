"""``vm import x.vmx|x.vmc|x.xml`` and ``vm import --from-libvirt NAME``: a foreign VM
becomes a new viridian VM (a new id), Off (docs/architecture.md, "Export and import").

The configuration is read by :mod:`viridian.interchange.foreign` (kind found by content;
an OVF descriptor under any name goes to :mod:`viridian.service.vms.ovf_import`)
and mapped like OVF (:mod:`viridian.interchange.foreign_plan`; what could not be mapped
is in the result's ``unmapped``). Disk rule — the source files are never changed and
never attached: every disk is copied into the new VM's folder,

- VMDK (any variant; its extents must lie in its own folder) → a dynamic VHD
  (``qemu-img convert``);
- VHD / VHDX (a differencing chain flattened) → a dynamic VHD (viridian's disk library);
- qcow2 and raw → the same format, attached as they are (QEMU reads both natively;
  a sparse copy; a qcow2 with a backing file is flattened by ``qemu-img convert``).

DVD images stay where they are (media are shared); one that is not on this host is
ejected with a notice. Written paths are resolved beside the configuration file (a
Windows path by its file name, also in a ``Virtual Hard Disks`` folder there; for a
Hyper-V configuration in an export's ``Virtual Machines`` folder, beside that folder)
and must stay in that folder (after symbolic links).

Refusals, before anything is registered, naming the conflict: the VM name in use, a MAC
address in use, a source disk attached to a registered VM or locked by a running QEMU,
a libvirt domain that is not shut off. Everything is made in a staging folder recorded
in the staging journal and committed like a copied import
(:mod:`viridian.service.vms.importing`): a failure or a kill leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from viridian.disks.foreign_convert import check_chain
from viridian.disks.vmdk import is_vmdk
from viridian.errors import BadRequest, Conflict, HostError, NotFound
from viridian.interchange.foreign import MAX_CONFIG, is_ovf_envelope, read_foreign
from viridian.interchange.foreign_plan import ForeignVM, map_foreign
from viridian.interchange.libvirt_xml import parse_domain
from viridian.interchange.native import DISKS_FOLDER, relocated_prefix
from viridian.interchange.relocate import relocate_settings
from viridian.model import VMSettings, to_dict
from viridian.model.choices import DiskFormat, DriveKind
from viridian.model.slots import DriveSlot, drive_slots, map_drives
from viridian.model.states import VMState
from viridian.service.catalog import VMRecord
from viridian.service.jobs import Job, now_iso
from viridian.service.vms.definition_file import Definition, write_definition
from viridian.service.vms.importing import Registrar, check_free
from viridian.service.vms.ovf_import import import_ovf
from viridian.service.vms.package_files import (
    StagingJournal,
    copy_sparse,
    publish,
    run,
    sync_folder,
)

LIBVIRT_URI = "qemu:///system"
HYPERV_CONFIG_FOLDER = "Virtual Machines"
WINDOWS_PATH = re.compile(r"^([A-Za-z]:|\\\\|\.\\)|\\")


async def import_foreign(core: Registrar, journal: StagingJournal, config: Path,
                         name: str | None, job: Job) -> dict[str, Any]:
    """Import the VM configured in the file ``config`` (see the module docstring)."""
    if not config.is_file():
        raise NotFound(f"{config} does not exist; nothing was changed", path=str(config))
    with open(config, "rb") as f:
        if is_ovf_envelope(f.read(MAX_CONFIG)):  # an OVF descriptor under another name
            return await import_ovf(core, journal, config, name, job)
    vm = read_foreign(config)
    base = config.parent
    if vm.kind == "hyper-v-2008" and base.name == HYPERV_CONFIG_FOLDER:
        base = base.parent  # an export: Virtual Machines/<GUID>.xml, Virtual Hard Disks/
    return await _import(core, journal, vm, base, name, job)


async def import_libvirt(core: Registrar, journal: StagingJournal, domain: str,
                         name: str | None, job: Job) -> dict[str, Any]:
    """Import the libvirt domain ``domain`` of the local libvirt (``qemu:///system``),
    which must be shut off; the domain and its files stay as they are."""
    state = (await _output("virsh", "-c", LIBVIRT_URI, "domstate", domain,
                           what=f"libvirt domain {domain!r}")).strip()
    if state != "shut off":
        raise Conflict(f"libvirt domain '{domain}' is {state}: shut it down first (only a "
                       "shut off domain is imported); nothing was changed", domain=domain,
                       state=state)
    xml = await _output("virsh", "-c", LIBVIRT_URI, "dumpxml", "--inactive", domain,
                        what=f"libvirt domain {domain!r}")
    vm = parse_domain(xml.encode(), f"libvirt domain {domain!r}")
    return await _import(core, journal, vm, Path("/"), name, job)


async def _import(core: Registrar, journal: StagingJournal, vm: ForeignVM, base: Path,
                  name: str | None, job: Job) -> dict[str, Any]:
    vm_name = name or vm.system.name
    vm_id = str(uuid.uuid4())
    check_free(core.catalog, vm_id, vm_name)
    mapped = map_foreign(vm, vm_name)
    notices: list[str] = []
    settings = map_drives(mapped.settings, lambda s: _located(s, base, notices))
    for slot in drive_slots(settings):
        if slot.kind is DriveKind.HARD_DISK and slot.path:
            await _check_unused(core, slot)
    final = core.data_dir / "vms" / vm_id
    staging = final.with_name(f".new-{vm_id}")
    journal.begin(staging, "import", vm_id)
    try:
        staging.mkdir(mode=0o700)
        settings = await _copied(settings, staging, job, contained=base != Path("/"))
        checked = core.checked_registration(vm_id, vm_name, to_dict(settings))
        settings = relocate_settings(checked, relocated_prefix(str(staging), str(final)))
        sync_folder(staging)
        live = core.register_record(VMRecord(vm_id, vm_name, settings, VMState.OFF, None,
                                             str(final), now_iso()))
    except BaseException:
        journal.discard(staging)
        raise
    publish(staging, final)
    journal.end(staging)
    write_definition(final, Definition.of(live.record))
    return {**live.to_dict(), "mode": vm.kind, "unmapped": list(mapped.unmapped),
            "notices": notices}


def _located(slot: DriveSlot, base: Path, notices: list[str]) -> DriveSlot:
    """``slot`` with its path resolved on this host; a DVD image that is not here is
    ejected (noted); a hard disk that is not here is refused."""
    if not slot.path:
        return slot
    found = locate(slot.path, base)
    if found is not None:
        return replace(slot, path=str(found), format=None)
    if slot.kind is DriveKind.DVD:
        notices.append(f"DVD {slot.path} at {slot.label} is not on this host: ejected")
        return replace(slot, path=None, format=None)
    raise NotFound(f"the disk {slot.path!r} for {slot.label} is not on this host (looked "
                   f"for it beside the configuration in {base}); nothing was changed",
                   path=slot.path)


def locate(written: str, base: Path) -> Path | None:
    """The file a configuration names ``written``: relative to ``base``; a Windows path
    by its file name in ``base`` or ``base/Virtual Hard Disks``; None when not found.

    :raises BadRequest: the file lies outside ``base`` (symbolic links resolved): a
        configuration file may only bring in files of its own folder, so an import
        reads nothing its caller could not name (a libvirt domain's base is ``/``: that
        route needs ``host.manage``).
    """
    if WINDOWS_PATH.search(written):
        leaf = re.split(r"[\\/]", written)[-1]
        relative = written.replace("\\", "/")
        candidates = [base / relative] if written.startswith(".\\") else []
        candidates += [base / leaf, base / "Virtual Hard Disks" / leaf]
    else:
        candidates = [base / written]
    found = next((c.resolve() for c in candidates if c.is_file()), None)
    root = base.resolve()
    if found is not None and root not in found.parents:
        raise BadRequest(f"{written!r} resolves to {found}, outside the configuration's "
                         f"folder {root}; a foreign VM may only bring in files of its own "
                         "folder (move them there); nothing was changed", path=written)
    return found


async def _check_unused(core: Registrar, slot: DriveSlot) -> None:
    """Refuse a source disk attached to a registered VM or locked by a running QEMU."""
    assert slot.path is not None
    holder = core.catalog.usage.disk_holder(slot.path, None)
    if holder is not None:
        raise Conflict(f"the disk {slot.path} ({slot.label}) is attached to the registered "
                       f"VM '{holder.vm_name}'; nothing was changed", path=slot.path,
                       vm=holder.vm_name)
    if is_vmdk(_head(Path(slot.path))):
        return  # its extents are checked when it is converted
    process = await asyncio.create_subprocess_exec(
        "qemu-img", "info", "--output=json", slot.path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    if process.returncode != 0 and b"lock" in err:
        raise Conflict(f"the disk {slot.path} ({slot.label}) is in use by a running process "
                       f"({err.decode(errors='replace').strip()}); stop it first; nothing "
                       "was changed", path=slot.path)


async def _copied(settings: VMSettings, staging: Path, job: Job,
                  contained: bool) -> VMSettings:
    """``settings`` with each hard disk replaced by its copy in ``staging`` (the rule of
    the module docstring); ``contained``: each disk's extents, parent and backing files
    must lie in its own folder (:func:`viridian.disks.foreign_convert.check_chain`; a
    VMDK's extents always must)."""
    made: dict[str, tuple[str, DiskFormat]] = {}
    disks = [s for s in drive_slots(settings) if s.kind is DriveKind.HARD_DISK and s.path]
    for slot in disks:
        assert slot.path is not None
        if slot.path in made:
            continue
        job.report(10 + 80 * len(made) / max(1, len(disks)), f"copying {slot.path}")
        if contained or is_vmdk(_head(Path(slot.path))):
            await asyncio.to_thread(check_chain, Path(slot.path))
        made[slot.path] = await _copy_disk(Path(slot.path), staging / DISKS_FOLDER,
                                           len(made))
    return map_drives(settings, lambda s: replace(s, path=made[s.path][0],
                                                  format=made[s.path][1])
                      if s.path in made and s.kind is DriveKind.HARD_DISK else s)


async def _copy_disk(source: Path, folder: Path, index: int) -> tuple[str, DiskFormat]:
    folder.mkdir(exist_ok=True)
    stem = f"{index}-{source.stem}" if index else source.stem
    if is_vmdk(_head(source)):
        target = folder / f"{stem}.vhd"
        await run("qemu-img", "convert", "-q", "-f", "vmdk", "-O", "vpc", "-o",
                  "subformat=dynamic,force_size=on", str(source), str(target))
        return str(target), DiskFormat.VPC
    info = json.loads(await _output("qemu-img", "info", "-U", "--output=json", str(source),
                                    what=str(source)))
    fmt = info.get("format")
    if fmt in ("vpc", "vhdx"):
        from viridian.disks import convert

        target = folder / f"{stem}.vhd"
        await asyncio.to_thread(convert, source, target, "dynamic")
        return str(target), DiskFormat.VPC
    if fmt == "qcow2":
        target = folder / f"{stem}.qcow2"
        if info.get("backing-filename"):
            await run("qemu-img", "convert", "-q", "-U", "-O", "qcow2", str(source),
                      str(target))
        else:
            await copy_sparse(source, target)
        return str(target), DiskFormat.QCOW2
    if fmt == "raw":
        target = folder / f"{stem}.raw"
        await copy_sparse(source, target)
        return str(target), DiskFormat.RAW
    raise BadRequest(f"the disk {source} is a {fmt} image; allowed: VMDK, VHD, VHDX, qcow2, "
                     "raw; nothing was changed", path=str(source))


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


async def _output(*argv: str, what: str) -> str:
    """The standard output of ``argv``; a failure is a refusal naming ``what``."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"})
    except OSError as err:
        raise HostError(f"{argv[0]} cannot run: {err}", command=list(argv)) from err
    out, stderr = await process.communicate()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip()
        if "failed to get domain" in message or "Domain not found" in message:
            raise NotFound(f"{what} does not exist ({message}); nothing was changed")
        raise BadRequest(f"cannot read {what}: {message}; nothing was changed")
    return out.decode(errors="replace")
