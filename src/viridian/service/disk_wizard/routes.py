"""The disk wizard over the API (Hyper-V's New/Edit Virtual Hard Disk wizards).

Routes (``/api/v1/disks/…``; every path absolute, on the service's host):

* ``POST /disks/inspect`` ``{"path"}`` → 200 the disk's facts and parent chain;
* ``POST /disks/new`` ``{"path", "type": "dynamic"|"fixed"|"differencing", "size": "10G"|int,
  "parent": path (differencing), "block_size": size|null}`` → 202 job;
* ``POST /disks/convert`` ``{"src", "dst", "type": "dynamic"|"fixed"|"raw"}`` → 202 job;
* ``POST /disks/compact`` ``{"path"}`` → 202 job;
* ``POST /disks/expand`` ``{"path", "size"}`` → 202 job;
* ``POST /disks/merge`` ``{"child", "into_parent": bool, "output": path|null}`` → 202 job;
* ``POST /disks/check`` ``{"path", "repair": bool}`` → 202 job (result: the check report);
* ``POST /disks/uses`` ``{"paths": [...]}`` → 200 ``{"uses": [...]}``: which VM uses each
  file and how (drive, checkpoint base, overlay, memory or saved state); the CLI's ``disk``
  commands ask this first and send an operation on a known file here.

Jobs (kinds ``disk_<op>``) report progress and end with ``result`` = what the operation
returned (facts of the disk written, the compaction figures). ``?wait=S`` as for VM
actions. What would break a VM or a checkpoint is refused (409 naming the VM and the
checkpoint; the rules are in :mod:`.guard`); an operation on a VM's file runs on that
VM's queue. The library's own refusals keep the status their error class carries (the
error table of docs/api.md) and are translated here, once.

For a user (not the admin token): the capacity a request makes counts against the user's
disk quota (:mod:`.quota`), and when the user's paths are confined to storage paths the
job opens exactly the files that were checked (:mod:`.pinning`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request

from viridian import disks
from viridian.config import API_PREFIX
from viridian.errors import (
    AdmissionRefused,
    BadRequest,
    Conflict,
    HostError,
    NotFound,
    ViridianError,
)
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.disk_wizard.guard import Access, DiskGuard, merge_accesses
from viridian.service.disk_wizard.pinning import NoPins, Pins
from viridian.service.disk_wizard.quota import WizardQuota, capacity_of
from viridian.service.http_boundary import RequestBody
from viridian.service.jobs import Job

DISKS = f"{API_PREFIX}/disks"


class InspectSpec(RequestBody):
    path: str


class NewSpec(RequestBody):
    path: str
    type: Literal["dynamic", "fixed", "differencing"] = "dynamic"
    size: str | int | None = None
    parent: str | None = None
    block_size: str | int | None = None


class ConvertSpec(RequestBody):
    src: str
    dst: str
    type: Literal["dynamic", "fixed", "raw"] = "dynamic"


class ExpandSpec(RequestBody):
    path: str
    size: str | int


class UsesSpec(RequestBody):
    paths: list[str]


class CheckSpec(RequestBody):
    path: str
    repair: bool = False


class MergeSpec(RequestBody):
    child: str
    into_parent: bool = False
    output: str | None = None


def absolute(path: str, what: str) -> Path:
    if not path or not Path(path).is_absolute():
        raise BadRequest(f"{what} must be an absolute path on the host, got {path!r}",
                         path=path)
    return Path(path)


def size_of(value: str | int | None, what: str) -> int:
    if value is None or value == "":
        raise BadRequest(f"{what} is required, e.g. 512M, 10G or a number of bytes")
    try:
        return value if isinstance(value, int) else disks.parse_size(str(value))
    except disks.InvalidDiskArgument as err:
        raise BadRequest(f"{what}: {err}", value=value) from err


DISK_ERROR_CLASSES: dict[str, type[ViridianError]] = {
    "bad_request": BadRequest, "not_found": NotFound, "conflict": Conflict,
    "admission_refused": AdmissionRefused, "host_error": HostError}
"""The service's error class for each ``code`` a disk error carries (docs/api.md)."""


def translate(err: Exception) -> ViridianError:
    """The library's errors as the service's (one boundary): a disk error keeps the
    status and exit code its ``code`` gives it in the error table."""
    if isinstance(err, disks.DiskInUse):
        return Conflict(f"{err}; nothing was changed")
    if isinstance(err, disks.DiskError):
        cls = DISK_ERROR_CLASSES.get(err.code, HostError)
        error = cls.__new__(cls)
        ViridianError.__init__(error, str(err))
        return error
    if isinstance(err, FileNotFoundError):
        return NotFound(f"no such file: {err.filename}", path=err.filename)
    if isinstance(err, OSError):
        return BadRequest(str(err))
    return ViridianError(f"{type(err).__name__}: {err}")


def submit(context: ServiceContext, kind: str,
           work: Callable[[Callable[[int, int], None]], Any],
           guarded: GuardedFiles | None = None) -> Job:
    """Run ``work(progress)`` in a thread as a job of ``kind``. With ``guarded``, the
    files are checked now (a refusal raises before any job exists) and again when the job
    runs, on the queue of the VM that uses them (:mod:`.guard`)."""
    owner = guarded.check() if guarded else None

    async def operation(job: Job) -> Any:
        loop = asyncio.get_running_loop()
        if guarded and (user := guarded.check()):  # an Off VM's storage daemon lets go
            await context.find_vm(user[0]).end_storage_daemon()

        def progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(job.report, 100 * done / max(total, 1), kind[5:])

        try:
            return await asyncio.to_thread(work, progress)
        except (disks.DiskError, OSError) as err:
            raise translate(err) from err

    return context.jobs.submit(kind, owner[0] if owner else None, owner[1] if owner else None,
                               operation)


@dataclass(frozen=True)
class GuardedFiles:
    """The files one request touches, for :class:`DiskGuard`."""

    guard: DiskGuard
    accesses: tuple[Access, ...]

    def check(self) -> tuple[str, str] | None:
        return self.guard.check(self.accesses)


def creator(spec: NewSpec) -> Callable[[Path], None]:
    """The checked creation step of ``spec`` (its folder is made when missing)."""
    make: Callable[[Path], None]
    if spec.type == "differencing":
        make = partial(_differencing, parent=absolute(spec.parent or "", "parent"))
    elif spec.type == "fixed":
        make = partial(disks.new_fixed, size=size_of(spec.size, "size"))
    else:
        block = size_of(spec.block_size, "block_size") if spec.block_size else \
            disks.DEFAULT_BLOCK_SIZE
        make = partial(disks.new_dynamic, size=size_of(spec.size, "size"), block_size=block)

    def create(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path)

    return create


def _differencing(path: Path, parent: Path) -> None:
    disks.new_differencing(path, parent)


Progress = Callable[[int, int], None]
Work = Callable[[Progress], Any]


def pins_for(request: Request) -> Callable[[], Pins]:
    """How the job reaches its files: pinned for a user confined to storage paths
    (:mod:`.pinning`), as given for anyone else."""
    access, principal = getattr(request.app.state, "access", None), CURRENT_PRINCIPAL.get()
    if access is None or principal is None or principal.bootstrap or \
            not access.confined(principal):
        return NoPins
    roots = [p["path"] for p in access.storage_paths(principal.subjects())]
    return lambda: Pins(principal.user, roots)


def pinned(make: Callable[[], Pins], work: Callable[[Pins, Progress], Any]) -> Work:
    """``work`` with the files it names reached through ``make()``'s pins."""

    def run(progress: Progress) -> Any:
        with make() as pins:
            return pins.shown(work(pins, progress))

    return run


def info(path: Path) -> dict[str, Any]:
    return disks.inspect(path).to_dict()


class DiskWizard(Capability):
    """The disk wizard: routes only (its work runs as jobs)."""

    name = "disk_wizard"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.guard = DiskGuard(context)

    def install_routes(self, app: FastAPI) -> None:
        install_disk_routes(app, self.context, self.guard)


def install_disk_routes(app: FastAPI, context: ServiceContext, guard: DiskGuard) -> None:
    """Add the disk wizard routes to ``app``."""
    quota = WizardQuota(context)

    def files(*accesses: Access) -> GuardedFiles:
        return GuardedFiles(guard, accesses)

    def charge(request: Request, target: Path, adding: int) -> None:
        quota.charge(getattr(request.app.state, "access", None), target, adding)

    async def answer(job: Job, wait: float) -> dict[str, Any]:
        return await context.jobs.wait(job.id, wait) if wait else job.to_dict()

    @app.post(f"{DISKS}/inspect", tags=["disks"])
    async def disk_inspect(spec: InspectSpec, request: Request) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        look = pinned(pins_for(request), lambda pins, _: info(pins.file(path)))
        try:
            return dict(await asyncio.to_thread(look, lambda _d, _t: None))
        except (disks.DiskError, OSError) as err:
            raise translate(err) from err

    @app.post(f"{DISKS}/new", status_code=202, tags=["disks"])
    async def disk_new(spec: NewSpec, request: Request,
                       wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        create = creator(spec)
        charge(request, path, capacity_of(spec.parent) if spec.type == "differencing" and
               spec.parent else size_of(spec.size, "size"))

        def make(pins: Pins, _: Progress) -> dict[str, Any]:
            target = pins.new_file(path)
            create(target)
            return info(target)

        job = submit(context, "disk_new", pinned(pins_for(request), make))
        return await answer(job, wait)

    @app.post(f"{DISKS}/convert", status_code=202, tags=["disks"])
    async def disk_convert(spec: ConvertSpec, request: Request,
                           wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        src, dst = absolute(spec.src, "src"), absolute(spec.dst, "dst")
        guarded = files(Access(src, False, "convert"),
                        Access(dst, True, f"convert {src} into", creates=True))
        guarded.check()  # refusals first, then the quota
        charge(request, dst, capacity_of(src))

        def convert(pins: Pins, progress: Progress) -> dict[str, Any]:
            target = pins.new_file(dst)
            disks.convert(pins.file(src), target, spec.type, progress=progress)
            return info(target) if spec.type != "raw" else {}

        job = submit(context, "disk_convert", pinned(pins_for(request), convert), guarded)
        return await answer(job, wait)

    @app.post(f"{DISKS}/compact", status_code=202, tags=["disks"])
    async def disk_compact(spec: InspectSpec, request: Request,
                           wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        job = submit(context, "disk_compact", pinned(
            pins_for(request), lambda pins, progress: vars(disks.compact(pins.file(path),
                                                                         progress))),
            files(Access(path, True, "compact")))
        return await answer(job, wait)

    @app.post(f"{DISKS}/expand", status_code=202, tags=["disks"])
    async def disk_expand(spec: ExpandSpec, request: Request,
                          wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path, size = absolute(spec.path, "path"), size_of(spec.size, "size")
        guarded = files(Access(path, True, "expand"))
        guarded.check()
        charge(request, path, max(size, capacity_of(path)))

        def expand(pins: Pins, progress: Progress) -> dict[str, Any]:
            target = pins.file(path)
            disks.expand(target, size, progress)
            return info(target)

        job = submit(context, "disk_expand", pinned(pins_for(request), expand), guarded)
        return await answer(job, wait)

    @app.post(f"{DISKS}/merge", status_code=202, tags=["disks"])
    async def disk_merge(spec: MergeSpec, request: Request,
                         wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        child = absolute(spec.child, "child")
        if spec.into_parent == (spec.output is not None):
            raise BadRequest("give exactly one of into_parent: true or output: PATH")
        output = absolute(spec.output, "output") if spec.output else None
        guarded = files(*merge_accesses(child, output))
        guarded.check()
        if output is not None:
            charge(request, output, capacity_of(child))

        def merge(pins: Pins, progress: Progress) -> dict[str, Any]:
            made = disks.merge(pins.file(child), into_parent=spec.into_parent,
                               output=pins.new_file(output) if output else None,
                               progress=progress)
            return {"path": str(made)}

        job = submit(context, "disk_merge", pinned(pins_for(request), merge), guarded)
        return await answer(job, wait)

    @app.post(f"{DISKS}/uses", tags=["disks"])
    async def disk_uses(spec: UsesSpec) -> dict[str, Any]:
        """Which VMs use which of ``paths``, and how (empty: the service knows none)."""
        paths = [absolute(p, "paths[]") for p in spec.paths]
        return {"uses": [use.to_dict() for use in guard.uses(paths)]}

    @app.post(f"{DISKS}/check", status_code=202, tags=["disks"])
    async def disk_check(spec: CheckSpec, request: Request,
                         wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        guarded = files(Access(path, True, "repair")) if spec.repair else files(
            Access(path, False, "check"))
        job = submit(context, "disk_check", pinned(pins_for(request), lambda pins, _: disks.check(
            pins.file(path), repair=spec.repair).to_dict()), guarded)
        return await answer(job, wait)
