"""Backup schedules run by the service (table ``backup_schedules``): a loop looks every
:data:`TICK_S` seconds for due schedules (:func:`viridian.backup.schedule.due`), records
the run's start first (so a failing VM is not retried in a loop, and a restarted service
runs a missed schedule once) and queues the backup job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from viridian.backup.retention import Retention
from viridian.backup.schedule import Schedule, due
from viridian.errors import NotFound, ViridianError
from viridian.service.catalog import Catalog

log = logging.getLogger(__name__)

TICK_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_schedules (
    vm_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    every_minutes INTEGER NOT NULL,
    incremental INTEGER NOT NULL,
    keep_daily INTEGER NOT NULL,
    keep_weekly INTEGER NOT NULL,
    last_run TEXT
);
"""

Submit = Callable[[str, str, bool, int | None, Retention], dict[str, Any]]


class ScheduleStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    def put(self, schedule: Schedule) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO backup_schedules VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (schedule.vm_id, schedule.target, schedule.every_minutes,
                        int(schedule.incremental), schedule.keep_daily, schedule.keep_weekly,
                        schedule.last_run))

    def remove(self, vm_id: str) -> None:
        """:raises NotFound: the VM has no schedule."""
        if not any(s.vm_id == vm_id for s in self.all()):
            raise NotFound("the VM has no backup schedule; nothing was changed", vm=vm_id)
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM backup_schedules WHERE vm_id = ?", (vm_id,))

    def all(self) -> list[Schedule]:
        rows = self.catalog.read("SELECT vm_id, target, every_minutes, incremental, "
                                 "keep_daily, keep_weekly, last_run FROM backup_schedules "
                                 "ORDER BY vm_id")
        return [Schedule(str(r[0]), str(r[1]), int(r[2]), bool(r[3]), int(r[4]), int(r[5]),
                         r[6]) for r in rows]


class Scheduler:
    """The loop (see the module docstring); ``submit`` queues one backup."""

    def __init__(self, store: ScheduleStore, submit: Submit) -> None:
        self.store = store
        self.submit = submit
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                            name="backup-schedules")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            self.run_due(datetime.now(UTC))
            await asyncio.sleep(TICK_S)

    def run_due(self, now: datetime) -> list[str]:
        """Queue every due schedule's backup; the VM ids queued."""
        queued: list[str] = []
        for schedule in due(self.store.all(), now):
            self.store.put(replace(schedule, last_run=now.isoformat(timespec="seconds")
                                   .replace("+00:00", "Z")))
            try:
                self.submit(schedule.vm_id, schedule.target, schedule.incremental, None,
                            Retention(schedule.keep_daily, schedule.keep_weekly))
                queued.append(schedule.vm_id)
            except ViridianError as err:
                log.warning("scheduled backup of VM %s not started: %s", schedule.vm_id, err)
        return queued
