"""HTTP routes of backup (docs/api.md, "Backup"). Taking, verifying and restoring answer
202 with a job (``?wait=S`` answers once it ended)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query
from pydantic import Field

from viridian.backup.retention import Retention
from viridian.config import API_PREFIX
from viridian.errors import InvalidSetting
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.backup.capability import BackupCapability

PREFIX = f"{API_PREFIX}/backups"


class NewBackup(RequestBody):
    vm: str | None = None
    """The VM's name or id (or ``all``)."""
    all: bool = False
    """Every VM on the host instead: the job's result lists each VM's point or error."""
    target: str
    """An existing folder (a mounted NAS); the point goes to ``target/<VM name>/<id>``."""
    incremental: bool = False
    rate_limit_mib_s: float | None = Field(default=None, gt=0)
    """Write to the target at most this fast (MiB/s)."""
    keep_daily: int = Field(default=0, ge=0, le=10_000)
    """Then keep only the newest point of each of this many days (with points)."""
    keep_weekly: int = Field(default=0, ge=0, le=10_000)
    """… and of each of this many ISO weeks; chains are kept whole."""
    with_memory: bool = False
    """Include the VM's memory state (a Running, Paused or Saved VM; with ``all``, each
    VM that has one)."""


class ScheduleRequest(RequestBody):
    target: str
    every_minutes: int = Field(ge=1, le=60 * 24 * 366)
    incremental: bool = True
    keep_daily: int = Field(default=0, ge=0, le=10_000)
    keep_weekly: int = Field(default=0, ge=0, le=10_000)


class RestoreRequest(RequestBody):
    name: str | None = None
    """Restore as a new VM of this name (new id); without it in place, or the removed VM
    again."""
    to_time: str | None = None
    """The newest good point at or before this time (ISO 8601, or ``YYYY-MM-DD HH:MM`` in
    the host's time zone); the path then names the point or the VM."""


def install_backup_routes(app: FastAPI, backups: BackupCapability) -> None:
    jobs = backups.core.jobs

    async def answer(job: dict[str, Any], wait: float) -> dict[str, Any]:
        return await jobs.wait(job["id"], wait) if wait else job

    @app.post(PREFIX, status_code=202, tags=["backup"])
    async def backup_new(spec: NewBackup,
                         wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Take a backup point of a VM (a job whose result is the backup record)."""
        rate = int(spec.rate_limit_mib_s * (1 << 20)) if spec.rate_limit_mib_s else None
        retention = Retention(spec.keep_daily, spec.keep_weekly)
        if spec.all == (spec.vm is not None):
            raise InvalidSetting("vm", spec.vm, "give either 'vm' (a VM's name or id) or "
                                 "'all': true, not both")
        if spec.vm is None:
            return await answer(backups.new_all(spec.target, spec.incremental, rate,
                                                retention, spec.with_memory), wait)
        return await answer(backups.new(spec.vm, spec.target, spec.incremental, rate,
                                        retention, spec.with_memory), wait)

    @app.get(PREFIX, tags=["backup"])
    async def backup_list(vm: str | None = None) -> dict[str, Any]:
        """Good backup points, oldest first (a partial point is never listed)."""
        return {"backups": backups.points(vm)}

    @app.get(f"{PREFIX}/schedules", tags=["backup"])
    async def backup_schedules() -> dict[str, Any]:
        """Backup schedules with their last and next runs."""
        return {"schedules": backups.schedule_list()}

    @app.put(f"{PREFIX}/schedules/{{ref}}", tags=["backup"])
    async def backup_schedule_set(ref: str, spec: ScheduleRequest) -> dict[str, Any]:
        """Back VM ``ref`` up every ``every_minutes`` (replaces its schedule)."""
        return backups.set_schedule(ref, spec.target, spec.every_minutes, spec.incremental,
                                    Retention(spec.keep_daily, spec.keep_weekly))

    @app.delete(f"{PREFIX}/schedules/{{ref}}", tags=["backup"])
    async def backup_schedule_remove(ref: str) -> dict[str, Any]:
        return backups.remove_schedule(ref)

    @app.get(f"{PREFIX}/{{backup_id}}", tags=["backup"])
    async def backup_show(backup_id: str) -> dict[str, Any]:
        return backups.show(backup_id)

    @app.delete(f"{PREFIX}/{{backup_id}}", tags=["backup"])
    async def backup_remove(backup_id: str) -> dict[str, Any]:
        """Remove a point no later point builds on."""
        return backups.remove(backup_id)

    @app.post(f"{PREFIX}/{{backup_id}}/verify", status_code=202, tags=["backup"])
    async def backup_verify(backup_id: str,
                            wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Re-read every block of the point's chain against its checksums (a job)."""
        return await answer(backups.verify(backup_id), wait)

    @app.post(f"{PREFIX}/{{backup_id}}/restore", status_code=202, tags=["backup"])
    async def backup_restore(backup_id: str, spec: RestoreRequest,
                             wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Restore a point as a new VM, the removed VM again, or in place (a job)."""
        return await answer(backups.restore(backup_id, spec.name, spec.to_time), wait)
