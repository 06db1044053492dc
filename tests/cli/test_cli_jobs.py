"""`viridian job list|show|wait|cancel` and the `--no-wait` hint (issue 13, friction)."""

from __future__ import annotations

import pytest

from tests.cli.cli_harness import Run
from tests.cli.fake_service import FakeService


def _queued_start(fake: FakeService, run: Run) -> str:
    fake.add_vm("web")
    result = run("vm", "start", "web", "--no-wait")
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_job_list_shows_every_job(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    result = run("job", "list")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "KIND", "VM", "STATE", "PROGRESS", "CREATED"]
    assert row.split()[:5] == [job_id, "start", "web", "queued", "0%"]


def test_job_show_prints_the_job(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    result = run("job", "show", job_id)
    assert result.exit_code == 0, result.output
    assert f"Id:        {job_id}" in result.stdout.splitlines()
    assert "State:     running" in result.stdout.splitlines()  # each GET advances the fake


def test_job_wait_follows_the_job_to_its_end(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    result = run("job", "wait", job_id)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{job_id} (start web): completed\n"
    assert "start web: completed 100%" in result.stderr
    assert fake.vms["web"]["state"] == "Running"


def test_job_wait_exits_with_the_jobs_error(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    fake.fail_jobs["web"] = {"code": "host_error", "message": "qemu died", "details": {}}
    result = run("job", "wait", job_id)
    assert result.exit_code == 6
    assert result.stderr.endswith("error: qemu died\n")


def test_job_cancel_cancels_a_queued_job(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    result = run("job", "cancel", job_id)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{job_id} (start web): cancelled\n"
    assert fake.vms["web"]["state"] == "Off"


def test_job_cancel_of_a_finished_job_is_a_conflict(fake: FakeService, run: Run) -> None:
    job_id = _queued_start(fake, run)
    assert run("job", "wait", job_id).exit_code == 0
    result = run("job", "cancel", job_id)
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: job {job_id} is completed; only queued jobs can be cancelled\n"
    )


@pytest.mark.parametrize("command", ["show", "wait", "cancel"])
def test_unknown_job_exits_3(fake: FakeService, run: Run, command: str) -> None:
    result = run("job", command, "job-99")
    assert result.exit_code == 3
    assert result.stderr == "error: no job 'job-99'\n"


def test_no_wait_on_a_terminal_adds_the_follow_up_hint(
    fake: FakeService, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("viridian.cli.job._stderr_is_terminal", lambda: True)
    fake.add_vm("web")
    result = run("vm", "start", "web", "--no-wait")
    assert result.exit_code == 0
    assert result.stdout == "job-1\n"  # scripts still read the bare id
    assert result.stderr == (
        "follow it with: viridian job wait job-1  (or job show / job cancel)\n"
    )
