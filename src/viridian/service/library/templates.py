"""Templates in libraries (:mod:`viridian.library.templates`): made from an Off VM as a
job on that VM's queue, listed from the libraries' ``templates/`` folders, removed
unless a VM made from it still reads its disks (:attr:`Templates.users`)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from viridian.errors import Conflict, NotFound
from viridian.library.items import TEMPLATES_FOLDER, check_library_name
from viridian.library.templates import (
    GENERALISED,
    MANIFEST,
    TemplateDisk,
    TemplateManifest,
    disk_file_name,
    generalise,
    manifest_from_json,
    source_disks,
)
from viridian.model.choices import DiskFormat
from viridian.model.codec import to_dict
from viridian.model.slots import hard_disks, map_drives
from viridian.model.states import VMState
from viridian.service.context import ServiceContext
from viridian.service.jobs import Job, now_iso
from viridian.service.library import images
from viridian.service.library.shares import DEFAULT_LIBRARY
from viridian.service.library.store import LibraryStore, Share
from viridian.service.library.sysprep import make_template_disk


@dataclass(frozen=True)
class StoredTemplate:
    manifest: TemplateManifest
    library: str
    folder: Path

    def disk_path(self, disk: TemplateDisk) -> Path:
        return self.folder / disk.file

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": m.name, "version": m.version, "library": self.library,
                "folder": str(self.folder), "created_at": m.created_at,
                "source_vm": m.source_vm, "generalised": list(m.generalised),
                "disks": [{**vars(d), "path": str(self.disk_path(d))} for d in m.disks],
                "settings": m.settings}


RemoteUsers = Callable[[set[Path]], Awaitable[dict[str, list[str]]]]
"""The VMs of the other cluster hosts reading any of these files: host → VM names
(:meth:`viridian.service.library.forwarding.Forwarder.disk_users`)."""


class Templates:
    def __init__(self, context: ServiceContext, store: LibraryStore) -> None:
        self.context, self.store = context, store
        self.remote_users: RemoteUsers | None = None

    def all(self) -> list[StoredTemplate]:
        found = []
        for share in self.store.shares():
            for manifest in sorted((share.path / TEMPLATES_FOLDER).glob(f"*/v*/{MANIFEST}")):
                parsed = manifest_from_json(manifest.read_text())
                found.append(StoredTemplate(parsed, share.name, manifest.parent))
        return sorted(found, key=lambda t: (t.manifest.name, t.manifest.version))

    def versions(self, name: str) -> list[StoredTemplate]:
        found = [t for t in self.all() if t.manifest.name == name]
        if not found:
            known = ", ".join(sorted({t.manifest.name for t in self.all()})) or "none"
            raise NotFound(f"no template named '{name}'; templates: {known}", template=name)
        return found

    def get(self, name: str, version: int | None = None) -> StoredTemplate:
        found = self.versions(name)
        if version is None:
            return found[-1]
        for template in found:
            if template.manifest.version == version:
                return template
        raise NotFound(f"template '{name}' has no version {version}; versions: "
                       + ", ".join(str(t.manifest.version) for t in found), template=name)

    def listing(self) -> list[dict[str, Any]]:
        by_name: dict[str, list[StoredTemplate]] = {}
        for template in self.all():
            by_name.setdefault(template.manifest.name, []).append(template)
        return [{"name": name, "versions": [t.manifest.version for t in group],
                 "latest": group[-1].to_dict(), "used_by": self.users(name)}
                for name, group in sorted(by_name.items())]

    def users(self, name: str, version: int | None = None) -> list[str]:
        """Names of the VMs of this host that read template ``name``'s disks
        (``version``'s only when given): a drive that is one of them, or a qcow2 overlay
        backed by one."""
        return self.users_of(self.disks(name, version))

    def disks(self, name: str, version: int | None = None) -> set[Path]:
        return {t.disk_path(d) for t in self.versions(name)
                if version in (None, t.manifest.version) for d in t.manifest.disks}

    def users_of(self, disks: set[Path]) -> list[str]:
        """Names of this host's VMs that read one of ``disks`` (as :meth:`users`)."""
        return sorted({vm.record.name for vm in self.context.vms().values()
                       for slot in hard_disks(vm.record.settings)
                       if slot.path and _reads(Path(slot.path), disks)})

    async def remove(self, name: str, version: int | None) -> dict[str, Any]:
        """Delete template ``name`` (every version, or ``version``), unless a VM of this
        host or of another cluster host (:attr:`remote_users`: a library on shared
        storage is every member's) reads its disks.

        :raises Conflict: VMs read its disks (named, with their hosts), or a member could
            not be asked; nothing was changed."""
        chosen = [self.get(name, version)] if version else self.versions(name)
        disks = self.disks(name, version)
        users = self.users_of(disks)
        remote = await self.remote_users(disks) if self.remote_users else {}
        named = users + [f"{vm} (on {host})" for host, vms in sorted(remote.items())
                         for vm in vms]
        if named:
            raise Conflict(f"template '{name}' is in use by {', '.join(named)} (they read its "
                           "disks); remove those VMs first; nothing "
                           "was changed", template=name, vms=users,
                           elsewhere={h: v for h, v in remote.items() if v})
        for template in chosen:
            trash = template.folder.with_name(f".trash-{template.folder.name}")
            template.folder.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        return {"removed": name, "versions": [t.manifest.version for t in chosen]}

    def create(self, name: str, vm_ref: str, library: str | None) -> dict[str, Any]:
        """Queue a job on VM ``vm_ref``'s queue copying its disks and generalised settings
        into the next version of template ``name``; the job's result is the template.
        A version folder appears only complete (made under ``.new-v<N>``, then renamed).

        :raises InvalidSetting: a bad name. :raises NotFound: no such VM or library.
        The job fails with :class:`Conflict` when the VM is not Off."""
        check_library_name(name)
        share = self.store.share(library or DEFAULT_LIBRARY)
        live = self.context.find_vm(vm_ref)

        async def run(job: Job) -> dict[str, Any]:
            if live.state is not VMState.OFF:
                raise Conflict(f"VM '{live.record.name}' is {live.state.value}; a template "
                               "is made from a VM that is Off; nothing was changed",
                               vm=live.record.name, state=live.state.value)
            version = self._next_version(share, name)
            folder = share.path / TEMPLATES_FOLDER / name / f"v{version}"
            staging = folder.with_name(f".new-v{version}")
            staging.mkdir(parents=True, mode=0o700)
            try:
                manifest = await self._fill(job, staging, folder, name, version, live.record)
                staging.rename(folder)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return StoredTemplate(manifest, share.name, folder).to_dict()

        return self.context.jobs.submit("template_new", live.record.id, live.record.name,
                                        run).to_dict()

    def _next_version(self, share: Share, name: str) -> int:
        numbers = [int(p.name[1:]) for p in (share.path / TEMPLATES_FOLDER / name).glob("v*")
                   if p.name[1:].isdigit()]
        others = [t.manifest.version for t in self.all() if t.manifest.name == name]
        return max([0, *numbers, *others]) + 1

    async def _fill(self, job: Job, staging: Path, folder: Path, name: str, version: int,
                    record: Any) -> TemplateManifest:
        sources = source_disks(record.settings)
        disks: list[TemplateDisk] = []
        resets: set[str] = set()
        for done, (slot, (path, fmt)) in enumerate(sorted(sources.items())):
            job.report(5 + 85 * done / max(len(sources), 1), f"copying {path}")
            target, stored, reset = await asyncio.to_thread(  # the source is only read
                make_template_disk, Path(path), fmt, partial(_disk_at, staging, slot))
            resets.update(reset)
            target.chmod(0o444)
            sha = await asyncio.to_thread(images.sha256_of, target)
            disks.append(TemplateDisk(slot, target.name, stored, target.stat().st_size, sha))
        by_slot = {d.slot: d for d in disks}
        settings = map_drives(generalise(record.settings, name), lambda s: replace(
            s, path=str(folder / by_slot[s.id].file), format=DiskFormat(by_slot[s.id].format))
            if s.id in by_slot else s)
        manifest = TemplateManifest(name, version, now_iso(), record.name, to_dict(settings),
                                    tuple(disks), (*GENERALISED, *sorted(resets)))
        (staging / MANIFEST).write_text(manifest.to_json())
        return manifest


def _disk_at(staging: Path, slot: str, fmt: str) -> Path:
    return staging / disk_file_name(slot, fmt)


def _reads(path: Path, disks: set[Path]) -> bool:
    return path in disks or images.backing_of(path) in disks

