"""``vm export NAME DIR --ovf|--ova``: a VM that is Off or Saved written as an OVF 1.x
package (DMTF DSP0243; docs/architecture.md, "Export and import").

``--ovf`` writes the folder ``DIR/<name>/`` holding ``<name>.ovf`` (built by
:mod:`viridian.interchange.ovf_write`, its structure checked by
:mod:`viridian.interchange.ovf_check` before it is written), ``<name>.mf`` (SHA-256 of
every other file) and one streamOptimized VMDK per hard disk (``qemu-img convert -O vmdk
-o subformat=streamOptimized`` of the disk as the VM sees it now, through a checkpoint
overlay when there is one) plus each DVD image the VM has in a drive. ``--ova`` writes
the same files as the tar ``DIR/<name>.ova``: descriptor first, then the manifest, then
the rest (§5.3). The result lists what OVF cannot carry (``unexpressed``): checkpoints,
the saved state (an imported copy starts from Off), and the settings
:func:`viridian.interchange.ovf_write.unexpressed` names.

Crash safety as the native export's (:mod:`viridian.service.vms.export`): everything is
written in a journaled staging folder beside the target, synced, and renamed into place
last (fault point ``export.written`` just before); the VM is only read.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any, Literal

from viridian.checkpoints import Tree
from viridian.errors import Conflict, HostError
from viridian.interchange.manifest import manifest_text
from viridian.interchange.ovf_check import check_ovf
from viridian.interchange.ovf_write import PackageDisk, PackageFile, build_ovf
from viridian.model.choices import DriveKind
from viridian.model.slots import DriveSlot, drive_slots
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job
from viridian.service.vms.export import check_exportable
from viridian.service.vms.live import LiveVM
from viridian.service.vms.package_files import (
    StagingJournal,
    copy_sparse,
    publish,
    run,
    sync_folder,
)

OvfFormat = Literal["ovf", "ova"]


def check_ovf_export(live: LiveVM, folder: str, kind: OvfFormat) -> Path:
    """Where the export of ``live`` goes: ``folder/<name>`` (OVF) or
    ``folder/<name>.ova``; refused like a native export
    (:func:`viridian.service.vms.export.check_exportable`: folder, state, pass-through
    disks, then the package folder), an OVA when ``folder/<name>.ova`` exists."""
    try:
        return check_exportable(live, folder) if kind == "ovf" else \
            _ova_target(check_exportable(live, folder))
    except Conflict as err:  # the package folder exists: its check is the last one
        taken = Path(folder) / (live.record.name.replace("/", "_").lstrip(".") or "vm")
        if kind == "ova" and err.details.get("path") == str(taken):
            return _ova_target(taken)
        raise


def _ova_target(package_folder: Path) -> Path:
    final = package_folder.with_name(package_folder.name + ".ova")
    if final.exists():
        raise Conflict(f"{final} exists already; choose another folder or remove it; "
                       "nothing was changed", path=str(final))
    return final


async def export_ovf(live: LiveVM, tree: Tree, final: Path, kind: OvfFormat,
                     journal: StagingJournal, job: Job) -> dict[str, Any]:
    """Write the OVF package or OVA of ``live`` at ``final`` (checked by
    :func:`check_ovf_export`); the result names the package, its files and what it
    could not carry."""
    staging = final.with_name(f".{final.name}.export-{uuid.uuid4().hex[:8]}")
    journal.begin(staging, "export", live.record.id)
    staging.mkdir(mode=0o700)
    try:
        files, unexpressed = await _write_package(live, tree, _base(final), staging, job)
        if kind == "ova":
            job.report(92, f"writing {final.name}")
            ova = staging / final.name
            await asyncio.to_thread(_write_tar, staging, files, ova)
            _fsync(ova)
            fault("export.written")
            publish(ova, final)
            shutil.rmtree(staging)
        else:
            sync_folder(staging)
            fault("export.written")
            publish(staging, final)
    except BaseException:
        journal.discard(staging)
        raise
    journal.end(staging)
    return {"vm": live.record.name, "format": kind, "state": live.state.value,
            "checkpoints": len(tree.checkpoints), "files": files,
            ("file" if kind == "ova" else "folder"): str(final),
            "unexpressed": [*unexpressed, *_lost(live, tree)]}


async def _write_package(live: LiveVM, tree: Tree, base: str, staging: Path,
                         job: Job) -> tuple[list[str], tuple[str, ...]]:
    """The package's files in ``staging``: descriptor, manifest, then disks and media
    (that order); and what the descriptor could not say."""
    settings = live.record.settings
    disks: dict[str, PackageDisk] = {}
    media: dict[str, PackageFile] = {}
    slots = [slot for slot in drive_slots(settings) if slot.path]
    for index, slot in enumerate(slots):
        job.report(5 + 80 * index / max(1, len(slots)), f"writing {slot.label}")
        if slot.kind is DriveKind.HARD_DISK:
            source, source_format = _current_image(slot, tree)
            href = f"{base}-disk{len(disks) + 1}.vmdk"
            await run("qemu-img", "convert", "-U", "-q",
                      *(["-f", source_format] if source_format else []), "-O", "vmdk", "-o",
                      "subformat=streamOptimized", source, str(staging / href))
            disks[slot.id] = PackageDisk(_file(staging, href),
                                         await _virtual_size(source, source_format))
        elif slot.path and os.path.isfile(slot.path):
            href = f"{base}-dvd{len(media) + 1}{Path(slot.path).suffix or '.iso'}"
            await copy_sparse(Path(slot.path), staging / href)
            media[slot.id] = _file(staging, href)
    descriptor = build_ovf(settings, disks, media)
    problems = check_ovf(descriptor.text)
    if problems:  # a bug of the builder: never write a package that breaks DSP0243
        raise HostError(f"the OVF descriptor of {live.record.name} breaks DSP0243: "
                        f"{'; '.join(problems)}; nothing was exported")
    (staging / f"{base}.ovf").write_bytes(descriptor.text)
    data = [f"{base}.ovf", *(d.file.href for d in disks.values()),
            *(m.href for m in media.values())]
    job.report(88, "computing the manifest")
    (staging / f"{base}.mf").write_text(await asyncio.to_thread(manifest_text, staging, data),
                                        encoding="utf-8")
    return [data[0], f"{base}.mf", *data[1:]], descriptor.unexpressed


def _current_image(slot: DriveSlot, tree: Tree) -> tuple[str, str | None]:
    """The image holding the slot's data as the VM sees it now: Now's checkpoint overlay
    when the slot has one, else the disk itself."""
    now = tree.now_disks.get(slot.id)
    if now is not None and now.base == slot.path:
        return now.image.path, now.image.format
    assert slot.path is not None
    return slot.path, slot.format.value if slot.format else None


def _lost(live: LiveVM, tree: Tree) -> list[str]:
    lost = []
    if tree.checkpoints:
        lost.append(f"{len(tree.checkpoints)} checkpoint(s): OVF has none; the disks are "
                    "exported as the VM sees them now")
    if live.state.value == "Saved":
        lost.append("the saved state (memory): OVF has none; an imported copy starts from "
                    "Off")
    for slot in drive_slots(live.record.settings):
        if slot.kind is DriveKind.DVD and slot.path and not os.path.isfile(slot.path):
            lost.append(f"DVD {slot.path} at {slot.label}: not a file, written as an "
                        "empty drive")
    return lost


async def _virtual_size(path: str, image_format: str | None) -> int:
    process = await asyncio.create_subprocess_exec(
        "qemu-img", "info", "-U", "--output=json",
        *(["-f", image_format] if image_format else []), path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise HostError(f"qemu-img info {path} failed: {err.decode(errors='replace')}")
    return int(json.loads(out)["virtual-size"])


def _write_tar(folder: Path, names: list[str], ova: Path) -> None:
    """The OVA: a USTAR tar of ``names`` in that order (DSP0243 §5.3), plain members
    owned by root, mode 0644."""
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name in names:
            info = archive.gettarinfo(str(folder / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with (folder / name).open("rb") as data:
                archive.addfile(info, data)
            (folder / name).unlink()  # its bytes are in the tar now: free the space


def _file(folder: Path, href: str) -> PackageFile:
    return PackageFile(href, (folder / href).stat().st_size)


def _base(final: Path) -> str:
    """The package's file names start with the VM's folder name (without ``.ova``; at
    most 64 characters: a USTAR member name holds 100)."""
    return final.name.removesuffix(".ova")[:64]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
