"""Issue 18: a job records who submitted it, and its submitter may read and cancel it
without ``job.read``/``job.cancel`` (pure rule, the catalog column, the runner)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from viridian.access.policy import Grant, Policy
from viridian.access.principal import BOOTSTRAP, Principal
from viridian.access.roles import BUILTIN_ROLES, Role
from viridian.access.scopes import Target
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.catalog import Catalog, JobRecord
from viridian.service.jobs import JobRunner

SAM = Principal("sam", "local", "session")
EVE = Principal("eve", "local", "session")
ROLES = {**BUILTIN_ROLES, "Reader": Role("Reader", frozenset({"vm.read"}))}
POLICY = Policy(ROLES, [
    Grant(1, "Self-service user", "sam", "template:base"),
    Grant(2, "Self-service user", "eve", "template:base"),
    Grant(3, "Viewer", "vic", "host"),
])


def test_the_submitter_may_read_and_cancel_its_job_and_nothing_more() -> None:
    sams_job = Target(submitted_by="sam")
    assert POLICY.allows(SAM, "job.read", sams_job)
    assert POLICY.allows(SAM, "job.cancel", sams_job)
    assert not POLICY.allows(SAM, "host.read", sams_job)
    assert not POLICY.allows(SAM, "job.read", Target())  # a job of unknown submitter


def test_anyone_else_still_needs_the_operation_on_the_host() -> None:
    sams_job = Target(submitted_by="sam")
    assert not POLICY.allows(EVE, "job.read", sams_job)
    assert not POLICY.allows(EVE, "job.cancel", sams_job)
    viewer = Principal("vic", "local", "session")
    assert POLICY.allows(viewer, "job.read", sams_job)  # Viewer on the host: job.read
    assert not POLICY.allows(viewer, "job.cancel", sams_job)
    assert POLICY.allows(BOOTSTRAP, "job.cancel", sams_job)


def test_a_narrowed_token_of_the_submitter_keeps_its_narrowing() -> None:
    token = Principal("sam", "local", "token", token_role="Reader")
    assert not POLICY.allows(token, "job.read", Target(submitted_by="sam"))


def test_jobs_persisted_before_submitters_load_with_an_unknown_submitter(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as db:  # the jobs table as it was before issue 18
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, vm_id TEXT, "
                   "vm_name TEXT, state TEXT NOT NULL, progress INTEGER NOT NULL, "
                   "message TEXT NOT NULL, result TEXT, error TEXT, created_at TEXT NOT "
                   "NULL, started_at TEXT, finished_at TEXT)")
        db.execute("INSERT INTO jobs VALUES ('old', 'start', NULL, 'web', 'completed', 100, "
                   "'completed', 'null', NULL, '2026-01-01', NULL, '2026-01-01')")
    catalog = Catalog(path)
    try:
        old = catalog.get_job("old")
        assert old is not None and (old.kind, old.vm_name, old.submitted_by) == (
            "start", "web", None)
        catalog.put_job(JobRecord("new", "stop", None, "web", "queued", 0, "queued", None,
                                  None, "2026-01-02", None, None, "sam"))
        assert [(j.id, j.submitted_by) for j in catalog.list_jobs()] == [
            ("new", "sam"), ("old", None)]
    finally:
        catalog.close()


def test_a_job_records_the_principal_of_the_request_that_submitted_it(
        tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")

    async def submit() -> tuple[str, str]:
        runner = JobRunner(catalog)

        async def nothing(_job: object) -> None:
            return None
        outside = runner.submit("noop", None, None, nothing)
        reset = CURRENT_PRINCIPAL.set(SAM)
        try:
            mine = runner.submit("noop", None, None, nothing)
        finally:
            CURRENT_PRINCIPAL.reset(reset)
        await runner.drain()
        assert runner.get(mine.id)["submitted_by"] == "sam"
        assert runner.submitter(outside.id) is None
        assert runner.submitter("no-such-job") is None
        return mine.id, outside.id
    try:
        mine, outside = asyncio.run(submit())
        record = catalog.get_job(mine)  # persisted: a new runner (restart) still knows
        assert record is not None and record.submitted_by == "sam"
        assert JobRunner(catalog).submitter(mine) == "sam"
        assert JobRunner(catalog).get(outside)["submitted_by"] is None
    finally:
        catalog.close()
