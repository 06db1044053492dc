"""Provisioning VMs from templates (``POST /provision``): placement first, then per VM a
folder ``<data>/provisioned/<uuid>/`` holding qcow2 overlays over the template's disks
(or full copies) and a NoCloud seed ISO in the first DVD drive; the VM is defined through
the core's one create path and started. A failure removes every VM and folder this
request made. What the guest reports ("provisioned: ready", :data:`READY_FILE` read
through the guest agent) is shown under the vm object's ``provisioning``."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from viridian.errors import AdmissionRefused, Conflict, HostError, NotFound
from viridian.library.cloudinit import READY_FILE, Customisation, numbered, seed_files
from viridian.library.placement import VMNeeds
from viridian.library.spread import spread
from viridian.model import USER_SWITCH
from viridian.service.context import ServiceContext
from viridian.service.jobs import Job
from viridian.service.library import images
from viridian.service.library.placement import Placement, PlacementHost
from viridian.service.library.status import ID_FILE, ProvisionStatus
from viridian.service.library.templates import StoredTemplate, Templates

log = logging.getLogger(__name__)

FOLDER = "provisioned"
START_WAVE = 4  # VMs started at once: 20 QEMUs starting together time out on 2 loaded cores
START_TIMEOUT_S = 600.0
READY = "provisioned: ready"
WATCH_MAX_INTERVAL_S = 5.0


class VMMaker(PlacementHost, Protocol):
    """The core's create and request paths (besides the capability context and what
    placement reads)."""

    async def create_vm(self, name: str, patch: dict[str, Any], *, memory_mb: int | None,
                        processors: int | None, dvd: str | None,
                        vhd: str | None) -> dict[str, Any]: ...

    def request(self, ref: str, action: str, *, timeout_s: float | None) -> dict[str, Any]: ...

    async def remove_vm(self, ref: str, delete_files: bool) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Order:
    template: str
    version: int | None
    name: str
    count: int
    full_copy: bool
    custom: Customisation
    memory_mb: int | None
    switch: str | None
    start: bool
    hosts: Callable[[str], bool] | None = None
    """Which candidate hosts (by name) the request may use: its host group and the
    caller's grants (``service.library.selfservice``); None: every host."""
    positions: tuple[int, ...] | None = None
    """Which VMs of the batch of ``count`` (1-based, ascending) this request makes: a
    cluster host's share of a batch spread over hosts (:mod:`viridian.library.spread`);
    None: all of them."""

    def share(self, positions: tuple[int, ...]) -> Order:
        """This order making only the VMs at ``positions`` of its batch."""
        return replace(self, positions=positions)


class Provisioner:
    def __init__(self, context: VMMaker, templates: Templates) -> None:
        self.context, self.templates = context, templates
        self.status = ProvisionStatus(context.data_dir / FOLDER)  # what guests reported
        self.placement = Placement(context)

    def members(self, order: Order) -> list[tuple[int, str]]:
        return members(order)

    def names(self, order: Order) -> list[str]:
        return [name for _, name in members(order)]

    def ratings(self, order: Order, template: StoredTemplate) -> dict[str, Any]:
        """Where the VMs go: ``this_host`` (this host's name), ``ratings`` (every candidate
        host rated for one VM, best first), ``split`` (each host's share, in the order of
        their first VM: host, count, positions, vms, stars, reasons; see
        :mod:`viridian.library.spread`) and ``host`` (the first share's host), or
        ``refused`` (why the hosts cannot take them; ``host`` None, ``split`` empty)."""
        settings = template.manifest.settings
        switches = {a["switch"] for a in settings.get("network_adapters", [])
                    if a["switch"] and a["switch"] != USER_SWITCH}  # NAT: QEMU's own
        if order.switch:
            switches = {order.switch}
        names = self.names(order)
        needs = VMNeeds(order.memory_mb or int(settings["memory"]["startup_mb"]),
                        0 if not order.full_copy else sum(d.size for d in template.manifest.disks),
                        frozenset(switches), frozenset(names))
        here, hosts = self.placement.candidates()
        hosts = [h for h in hosts if order.hosts is None or order.hosts(h.name)]
        answer: dict[str, Any] = {"this_host": here, "ratings": [], "split": [], "host": None}
        if not hosts:
            return answer
        try:
            placed = spread(hosts, needs, names)
        except AdmissionRefused as refused:
            return {**answer, "ratings": refused.details.get("ratings", []),
                    "refused": refused.message}
        shares = [s.to_dict() for s in placed.shares]
        return {**answer, "ratings": [r.to_dict() for r in placed.ratings], "split": shares,
                "host": shares[0]["host"]}

    def host_names(self) -> list[str]:
        """The names of the candidate hosts (this host's first)."""
        return [h.name for h in self.placement.candidates()[1]]

    def plan(self, order: Order) -> dict[str, Any]:
        template = self.templates.get(order.template, order.version)
        order.custom.checked()
        taken = [n for n in self.names(order) if _exists(self.context, n)]
        if taken:
            raise Conflict(f"VM names taken: {', '.join(taken)}; nothing was changed",
                           vms=taken)
        return {"template": template.manifest.name, "version": template.manifest.version,
                "vms": self.names(order), **self.ratings(order, template)}

    def placed(self, order: Order) -> dict[str, Any]:
        """:meth:`plan`, refused when the hosts cannot take the VMs; ``split`` in the
        answer is each host's share, ``host`` the first share's (this host's name is
        ``this_host``).

        :raises AdmissionRefused: no candidate host (host group, grants), or the hosts
            together have no room for the VMs (:mod:`viridian.library.spread`: the
            switches missing, or the memory/storage needed and each host's free);
            nothing was changed.
        """
        planned = self.plan(order)
        if not planned["ratings"]:
            raise AdmissionRefused("no host of the requested host group may take these VMs "
                                   "(see 'viridian hostgroup list'); nothing was changed")
        if planned["host"] is None:
            raise AdmissionRefused(planned["refused"], ratings=planned["ratings"])
        return planned

    def submit(self, order: Order, planned: dict[str, Any]) -> dict[str, Any]:
        """Provision ``order`` on this host as :meth:`placed` planned it (a job; its
        result is the plan with the VMs made). The answer is the job with ``host``.

        :raises Conflict: placement put VMs on another host (forwarding is the route's,
            see :mod:`viridian.service.library.forwarding`).
        """
        away = sorted({s["host"] for s in planned["split"]} - {planned["this_host"]})
        if away:
            raise Conflict(f"placement picked host '{away[0]}', not this host "
                           f"'{planned['this_host']}'; nothing was changed", host=away[0])

        async def run(job: Job) -> dict[str, Any]:
            return await self.make(job, order, planned)
        job = self.context.jobs.submit("provision", None, order.name, run).to_dict()
        return {**job, "host": planned["host"]}

    async def make(self, job: Job, order: Order, planned: dict[str, Any]) -> dict[str, Any]:
        """Make (and start) ``order``'s VMs on this host inside ``job``: the plan with
        ``vms`` the VMs made. A failure removes every VM and folder it made."""
        template = self.templates.get(order.template, planned["version"])
        return await self._provision(job, order, template, planned)

    async def _provision(self, job: Job, order: Order, template: StoredTemplate,
                         planned: dict[str, Any]) -> dict[str, Any]:
        made: list[tuple[str, Path]] = []
        members = self.members(order)
        try:
            for done, (position, name) in enumerate(members):
                job.report(80 * done / len(members), f"defining {name}")
                made.append(await self._one(order, template, position, name))
            if order.start:
                await self._start_all(job, [n for n, _ in made])
        except BaseException:
            for name, folder in made:
                if _exists(self.context, name):
                    if self.context.find_vm(name).worker is not None:  # started: off first
                        stop = self.context.request(name, "stop", timeout_s=None)
                        await self.context.jobs.wait(stop["id"], START_TIMEOUT_S)
                    await self.context.remove_vm(name, delete_files=True)
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return {**planned, "vms": [n for n, _ in made]}

    async def _start_all(self, job: Job, names: list[str]) -> None:
        """Start ``names`` :data:`START_WAVE` at a time; a start that failed other than by
        admission is tried once more (QEMU's first QMP answer can miss its timeout on a
        loaded host). Raises naming every VM that did not start."""
        failed: dict[str, dict[str, Any]] = {}
        for first in range(0, len(names), START_WAVE):
            wave = names[first:first + START_WAVE]
            job.report(80 + 20 * first / len(names), "starting " + ", ".join(wave))
            for name, error in (await self._start_wave(wave)).items():
                if error.get("code") != "admission_refused":
                    error = (await self._start_wave([name])).get(name) or {}
                if error:
                    failed[name] = error
        if failed:
            why = "; ".join(f"{n}: {e.get('message', e)}" for n, e in failed.items())
            if all(e.get("code") == "admission_refused" for e in failed.values()):
                raise AdmissionRefused(f"not every VM could start: {why}", vms=list(failed))
            raise HostError(f"not every VM could start: {why}", vms=list(failed))

    async def _start_wave(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Start ``names`` together; the error object of each that did not start."""
        starts = {n: self.context.request(n, "start", timeout_s=None) for n in names}
        errors = {}
        for name, start in starts.items():
            done = await self.context.jobs.wait(start["id"], START_TIMEOUT_S)
            if done["state"] != "completed":
                errors[name] = done.get("error") or {"message": f"start {done['state']}"}
        return errors

    async def _one(self, order: Order, template: StoredTemplate, index: int, name: str
                   ) -> tuple[str, Path]:
        folder = self.context.data_dir / FOLDER / str(uuid.uuid4())
        folder.mkdir(parents=True, mode=0o700)
        paths = {}
        for disk in template.manifest.disks:
            source = template.disk_path(disk)
            target = folder / f"{Path(disk.file).stem}.qcow2"
            if order.full_copy:
                target = folder / disk.file
                await asyncio.to_thread(images.copy_sparse, source, target)
                target.chmod(0o600)
            else:
                await asyncio.to_thread(images.make_overlay, source, disk.format, target)
            paths[str(source)] = (str(target), disk.format if order.full_copy else "qcow2")
        custom = numbered(order.custom, index, order.count, str(uuid.uuid4()))
        seed = folder / "seed.iso"
        await asyncio.to_thread(images.make_seed_iso, seed_files(custom).as_files(),
                                folder / "seed", seed)
        patch = _settings(template.manifest.settings, paths, str(seed), order.switch)
        vm = await self.context.create_vm(name, patch, memory_mb=order.memory_mb,
                                          processors=None, dvd=None, vhd=None)
        (folder / ID_FILE).write_text(vm["id"])
        self.status.set(vm["id"], "provisioning", folder)
        return name, folder

    async def watch(self, vm_id: str) -> None:
        """Poll the guest agent until the guest wrote the ready file, for as long as the
        QEMU process running now runs: a guest slow to boot on a loaded host is still
        seen ready however long it takes (each later start of the VM watches again).
        Polls back off from every second to every :data:`WATCH_MAX_INTERVAL_S`."""
        live = self.context.vms().get(vm_id)
        worker = live.worker if live is not None else None
        interval = 1.0
        while worker is not None:
            live = self.context.vms().get(vm_id)
            if live is None or live.worker is not worker:
                return
            try:
                result = await worker.guest_agent.exec(["cat", READY_FILE], timeout=5)
                if result.exit_code == 0 and result.stdout.strip() == b"ready":
                    self.status.set(vm_id, READY)
                    live.view_changed()
                    return
            except Exception:  # the agent is not up yet: keep polling
                log.debug("VM %s: no ready file yet", vm_id)
            await asyncio.sleep(interval)
            interval = min(WATCH_MAX_INTERVAL_S, interval * 1.25)

    def folder_of(self, vm_id: str) -> Path | None:
        return self.status.folder(vm_id)


def members(order: Order) -> list[tuple[int, str]]:
    """The VMs ``order`` makes: (position in the batch, name). The names are the
    batch's: ``NAME`` alone, else ``NAME-1..NAME-count``; a share (``positions``) keeps
    its positions' names."""
    every = [(1, order.name)] if order.count == 1 else [
        (i, f"{order.name}-{i}") for i in range(1, order.count + 1)]
    if order.positions is None:
        return every
    return [every[p - 1] for p in order.positions]


def _exists(context: ServiceContext, name: str) -> bool:
    try:
        context.find_vm(name)
    except NotFound:
        return False
    return True


def _settings(settings: Mapping[str, Any], paths: Mapping[str, tuple[str, str]], seed: str,
              switch: str | None) -> dict[str, Any]:
    patch = {k: v for k, v in settings.items() if k != "name"}
    ide = []
    seeded = False
    for drive in settings.get("ide", []):
        drive = dict(drive)
        if drive["path"] in paths:
            drive["path"], drive["format"] = paths[drive["path"]]
        elif drive["kind"] == "dvd" and not seeded:
            drive["path"], drive["format"], seeded = seed, None, True
        ide.append(drive)
    if not seeded:
        ide.append({"controller": 1, "location": 1, "kind": "dvd", "path": seed})
    patch["ide"] = ide
    patch["scsi"] = [{**c, "disks": [{**d, "path": paths.get(d["path"], (d["path"], 0))[0],
                                      "format": paths.get(d["path"], (0, d["format"]))[1]}
                                     for d in c["disks"]]} for c in settings.get("scsi", [])]
    if switch:
        patch["network_adapters"] = [{**a, "switch": switch}
                                     for a in settings.get("network_adapters", [])] or [
            {"kind": "synthetic", "switch": switch}]
    return patch
