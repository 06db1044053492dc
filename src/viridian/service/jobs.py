"""Jobs (Hyper-V's Msvm_ConcreteJob): every long operation runs as one.

A job is created ``queued``, becomes ``running`` once it holds its VM's queue (one
``asyncio.Lock`` per VM: requests for one VM run one after another in arrival order,
never interleaved; different VMs proceed in parallel), and ends ``completed``, ``failed``
or ``cancelled``. A job is persisted when created and when it ends; a job that was
unfinished when the service died is marked failed at the next start. A job records who
submitted it (``submitted_by``: the user of the request that started it); its submitter
may read and cancel it without ``job.read``/``job.cancel`` (``viridian.access.policy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from viridian.errors import Conflict, Interrupted, NotFound, ViridianError, as_viridian
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.catalog import Catalog, JobRecord

log = logging.getLogger(__name__)

FINISHED = frozenset({"completed", "failed", "cancelled"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    kind: str
    vm_id: str | None
    vm_name: str | None
    state: str = "queued"
    progress: int = 0
    message: str = "queued"
    result: Any = None
    error: dict[str, Any] | None = None
    created_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    submitted_by: str | None = None
    """The user of the request that submitted the job; None: no request did."""
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    cancel_running: bool = field(default=False, repr=False)
    """Set by an operation that can be cancelled while it runs (a migration before its
    switch-over): :meth:`JobRunner.cancel` then cancels its task, and the operation undoes
    what it did before the job ends ``cancelled``."""

    def report(self, progress: float, message: str | None = None) -> None:
        """Progress callback handed to operations (0-100)."""
        self.progress = max(self.progress, min(100, int(progress)))
        if message:
            self.message = message

    def record(self) -> JobRecord:
        return JobRecord(self.id, self.kind, self.vm_id, self.vm_name, self.state,
                         self.progress, self.message, self.result, self.error,
                         self.created_at, self.started_at, self.finished_at,
                         self.submitted_by)

    def to_dict(self) -> dict[str, Any]:
        return job_dict(self.record())


def job_dict(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind, "vm": job.vm_name, "vm_id": job.vm_id,
        "state": job.state, "progress": job.progress, "message": job.message,
        "result": job.result, "error": job.error, "created_at": job.created_at,
        "started_at": job.started_at, "finished_at": job.finished_at,
        "submitted_by": job.submitted_by,
    }


Operation = Callable[[Job], Awaitable[Any]]


class JobRunner:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, asyncio.Lock] = {}

    def fail_interrupted(self) -> None:
        """Mark jobs left unfinished by a previous service process as failed."""
        for record in self._catalog.unfinished_jobs():
            error = Interrupted("the service stopped while this job ran; the VM's state "
                                "was reconciled with its QEMU process at restart").to_dict()
            self._catalog.put_job(JobRecord(
                record.id, record.kind, record.vm_id, record.vm_name, "failed",
                record.progress, "interrupted", None, error, record.created_at,
                record.started_at, now_iso(), record.submitted_by))

    def queue_for(self, vm_id: str) -> asyncio.Lock:
        return self._queues.setdefault(vm_id, asyncio.Lock())

    def busy(self, vm_id: str) -> bool:
        return self.queue_for(vm_id).locked()

    def submit(self, kind: str, vm_id: str | None, vm_name: str | None,
               operation: Operation) -> Job:
        """Queue ``operation`` as a new job, submitted by the principal of the request
        being served (:data:`CURRENT_PRINCIPAL`; none outside a request)."""
        principal = CURRENT_PRINCIPAL.get()
        job = Job(str(uuid.uuid4()), kind, vm_id, vm_name,
                  submitted_by=principal.user if principal is not None else None)
        self._jobs[job.id] = job
        self._catalog.put_job(job.record())
        job.task = asyncio.get_running_loop().create_task(self._run(job, operation))
        return job

    async def _run(self, job: Job, operation: Operation) -> None:
        try:
            if job.vm_id is None:
                await self._execute(job, operation)
            else:
                async with self.queue_for(job.vm_id):
                    await self._execute(job, operation)
        except asyncio.CancelledError:
            self._finish(job, "cancelled", None, None)
            raise

    async def _execute(self, job: Job, operation: Operation) -> None:
        job.state, job.started_at, job.message = "running", now_iso(), "running"
        try:
            result = await operation(job)
        except Exception as err:  # a bug or host failure too: report it, keep serving
            error = as_viridian(err)
            if error.code == ViridianError.code:  # a bug: keep its traceback in the log
                log.exception("job %s (%s) crashed", job.id, job.kind)
            self._finish(job, "failed", None, error.to_dict())
        else:
            job.progress = 100
            self._finish(job, "completed", result, None)

    def _finish(self, job: Job, state: str, result: Any, error: dict[str, Any] | None) -> None:
        job.state, job.result, job.error, job.finished_at = state, result, error, now_iso()
        job.message = state if error is None else error["message"]
        self._catalog.put_job(job.record())
        job.done.set()

    def get(self, job_id: str) -> dict[str, Any]:
        if job_id in self._jobs:
            return self._jobs[job_id].to_dict()
        record = self._catalog.get_job(job_id)
        if record is None:
            raise NotFound(f"no job with id '{job_id}'", job=job_id)
        return job_dict(record)

    def submitter(self, job_id: str) -> str | None:
        """Who submitted the job ``job_id``; None for an unknown job or submitter."""
        if job_id in self._jobs:
            return self._jobs[job_id].submitted_by
        record = self._catalog.get_job(job_id)
        return record.submitted_by if record is not None else None

    def list(self) -> list[dict[str, Any]]:
        return [job_dict(r) for r in self._catalog.list_jobs()]

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        if job is not None and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.done.wait(), timeout)
        return self.get(job_id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        running_cancellable = job is not None and job.state == "running" and job.cancel_running
        if job is None or (job.state != "queued" and not running_cancellable) or job.task is None:
            state = self.get(job_id)["state"]
            raise Conflict(f"job {job_id} is {state}; only queued jobs (and running "
                           "migrations before their switch-over) can be cancelled",
                           job=job_id, state=state)
        job.task.cancel()
        return job.to_dict()

    async def drain(self) -> None:
        """Wait for all running jobs (used in tests and at orderly shutdown)."""
        tasks = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
