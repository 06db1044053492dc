"""The disk wizard over the API (Hyper-V's New/Edit Virtual Hard Disk wizards).

Routes (``/api/v1/disks/…``; every path absolute, on the service's host):

* ``POST /disks/inspect`` ``{"path"}`` → 200 the disk's facts and parent chain;
* ``POST /disks/new`` ``{"path", "type": "dynamic"|"fixed"|"differencing", "size": "10G"|int,
  "parent": path (differencing), "block_size": size|null}`` → 202 job;
* ``POST /disks/convert`` ``{"src", "dst", "type": "dynamic"|"fixed"|"raw"}`` → 202 job;
* ``POST /disks/compact`` ``{"path"}`` → 202 job;
* ``POST /disks/expand`` ``{"path", "size"}`` → 202 job;
* ``POST /disks/merge`` ``{"child", "into_parent": bool, "output": path|null}`` → 202 job.

Jobs (kinds ``disk_<op>``) report progress and end with ``result`` = what the operation
returned (facts of the disk written, the compaction figures). ``?wait=S`` as for VM
actions. A disk that a VM which is not Off uses cannot be changed (409 naming the VM);
the library's own refusals (bad argument 400, locked by QEMU 409, missing file 404,
malformed disk 400) are translated here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query
from pydantic import BaseModel

from viridian import disks
from viridian.config import API_PREFIX
from viridian.errors import BadRequest, Conflict, NotFound, ViridianError
from viridian.model.states import VMState
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.jobs import Job

DISKS = f"{API_PREFIX}/disks"


class InspectSpec(BaseModel):
    path: str


class NewSpec(BaseModel):
    path: str
    type: Literal["dynamic", "fixed", "differencing"] = "dynamic"
    size: str | int | None = None
    parent: str | None = None
    block_size: str | int | None = None


class ConvertSpec(BaseModel):
    src: str
    dst: str
    type: Literal["dynamic", "fixed", "raw"] = "dynamic"


class ExpandSpec(BaseModel):
    path: str
    size: str | int


class MergeSpec(BaseModel):
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


def translate(err: Exception) -> ViridianError:
    """The library's errors as the service's (one boundary)."""
    if isinstance(err, disks.DiskInUse):
        return Conflict(f"{err}; nothing was changed")
    if isinstance(err, FileNotFoundError):
        return NotFound(f"no such file: {err.filename}", path=err.filename)
    if isinstance(err, disks.DiskError | OSError):
        return BadRequest(str(err))
    return ViridianError(f"{type(err).__name__}: {err}")


def users_of(context: ServiceContext, paths: list[Path]) -> list[tuple[str, str]]:
    """(VM name, state) of every VM that is not Off and has one of ``paths`` attached."""
    wanted = {str(p) for p in paths}
    found = []
    for live in context.vms().values():
        settings = live.record.settings
        attached = {d["path"] for d in settings["ide"] if d.get("path")}
        attached |= {d["path"] for c in settings["scsi"] for d in c["disks"]}
        if live.state is not VMState.OFF and attached & wanted:
            found.append((live.record.name, live.state.value))
    return found


def check_not_in_use(context: ServiceContext, paths: list[Path]) -> None:
    """:raises Conflict: a VM that is not Off uses one of ``paths`` (named)."""
    users = users_of(context, paths)
    if users:
        name, state = users[0]
        raise Conflict(f"the disk is attached to VM '{name}', which is {state}; turn the VM "
                       "off first; nothing was changed", vm=name, state=state)


def submit(context: ServiceContext, kind: str,
           work: Callable[[Callable[[int, int], None]], Any]) -> Job:
    """Run ``work(progress)`` in a thread as a job of ``kind``."""

    async def operation(job: Job) -> Any:
        loop = asyncio.get_running_loop()

        def progress(done: int, total: int) -> None:
            loop.call_soon_threadsafe(job.report, 100 * done / max(total, 1), kind[5:])

        try:
            return await asyncio.to_thread(work, progress)
        except (disks.DiskError, OSError) as err:
            raise translate(err) from err

    return context.jobs.submit(kind, None, None, operation)


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


Work = Callable[[Callable[[int, int], None]], Any]


def then_info(work: Work, path: Path | None) -> Work:
    """``work``, then the facts of the disk at ``path`` (just the path for raw images)."""

    def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
        work(progress)
        return info(path) if path is not None else {}

    return run


def info(path: Path) -> dict[str, Any]:
    return disks.inspect(path).to_dict()


class DiskWizard(Capability):
    """The disk wizard: routes only (its work runs as jobs)."""

    name = "disk_wizard"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def install_routes(self, app: FastAPI) -> None:
        install_disk_routes(app, self.context)


def install_disk_routes(app: FastAPI, context: ServiceContext) -> None:
    """Add the disk wizard routes to ``app``."""

    async def answer(job: Job, wait: float) -> dict[str, Any]:
        return await context.jobs.wait(job.id, wait) if wait else job.to_dict()

    @app.post(f"{DISKS}/inspect", tags=["disks"])
    async def disk_inspect(spec: InspectSpec) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        try:
            return await asyncio.to_thread(info, path)
        except (disks.DiskError, OSError) as err:
            raise translate(err) from err

    @app.post(f"{DISKS}/new", status_code=202, tags=["disks"])
    async def disk_new(spec: NewSpec, wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        create = creator(spec)
        job = submit(context, "disk_new", then_info(lambda _: create(path), path))
        return await answer(job, wait)

    @app.post(f"{DISKS}/convert", status_code=202, tags=["disks"])
    async def disk_convert(spec: ConvertSpec,
                           wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        src, dst = absolute(spec.src, "src"), absolute(spec.dst, "dst")
        check_not_in_use(context, [src])
        job = submit(context, "disk_convert", then_info(
            lambda progress: disks.convert(src, dst, spec.type, progress=progress),
            dst if spec.type != "raw" else None))
        return await answer(job, wait)

    @app.post(f"{DISKS}/compact", status_code=202, tags=["disks"])
    async def disk_compact(spec: InspectSpec,
                           wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path = absolute(spec.path, "path")
        check_not_in_use(context, [path])
        job = submit(context, "disk_compact",
                     lambda progress: vars(disks.compact(path, progress)))
        return await answer(job, wait)

    @app.post(f"{DISKS}/expand", status_code=202, tags=["disks"])
    async def disk_expand(spec: ExpandSpec,
                          wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        path, size = absolute(spec.path, "path"), size_of(spec.size, "size")
        check_not_in_use(context, [path])
        job = submit(context, "disk_expand",
                     then_info(lambda progress: disks.expand(path, size, progress), path))
        return await answer(job, wait)

    @app.post(f"{DISKS}/merge", status_code=202, tags=["disks"])
    async def disk_merge(spec: MergeSpec, wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        child = absolute(spec.child, "child")
        if spec.into_parent == (spec.output is not None):
            raise BadRequest("give exactly one of into_parent: true or output: PATH")
        output = absolute(spec.output, "output") if spec.output else None
        check_not_in_use(context, [child])
        job = submit(context, "disk_merge", lambda progress: {"path": str(disks.merge(
            child, into_parent=spec.into_parent, output=output, progress=progress))})
        return await answer(job, wait)
