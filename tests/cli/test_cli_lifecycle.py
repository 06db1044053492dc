"""`vm start|stop|...|reset` and `host shutdown`: jobs, waiting, progress."""

from __future__ import annotations

import pytest

from tests.cli.cli_harness import Run
from tests.cli.fake_service import FakeService

PLAIN_PROGRESS = [
    "{label}: queued 0%",
    "{label}: running 30% - preparing",
    "{label}: running 70% - working",
    "{label}: completed 100%",
]


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("start", "Off", "Running"),
        ("start", "Saved", "Running"),
        ("stop", "Running", "Off"),
        ("shutdown", "Running", "Off"),
        ("save", "Paused", "Saved"),
        ("pause", "Running", "Paused"),
        ("resume", "Paused", "Running"),
        ("reset", "Running", "Running"),
    ],
)
def test_action_waits_for_the_job_and_prints_the_resulting_state(
    fake: FakeService, run: Run, action: str, before: str, after: str
) -> None:
    fake.add_vm("web", before)
    result = run("vm", action, "web")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"web: {after}\n"
    assert result.stderr.splitlines() == [
        line.format(label=f"{action} web") for line in PLAIN_PROGRESS
    ]
    [post] = fake.requests_to("POST", f"/vms/web/{action}")
    assert post.body is None


def test_waiting_long_polls_the_job_with_a_wait(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    run("vm", "start", "web")
    polls = fake.requests_to("GET", "/jobs/")
    assert [poll.path for poll in polls] == ["/jobs/job-1"] * 3
    assert all(poll.query == {"wait": ["1"]} for poll in polls)


def test_status_is_shown_with_the_state(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running")
    fake.vms["web"]["status"] = "started by the automatic start action"
    result = run("vm", "pause", "web")
    assert result.stdout == "web: Paused (started by the automatic start action)\n"


def test_shutdown_passes_its_timeout(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running")
    result = run("vm", "shutdown", "web", "--timeout", "30")
    assert result.exit_code == 0
    assert fake.requests_to("POST", "/vms/web/shutdown")[0].body == {"timeout_s": 30.0}


@pytest.mark.parametrize("timeout", ["0", "-1", "soon"])
def test_shutdown_timeout_must_be_a_positive_number(
    fake: FakeService, run: Run, timeout: str
) -> None:
    result = run("vm", "shutdown", "web", "--timeout", timeout)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '--timeout': ")
    assert fake.requests == []


def test_no_wait_prints_the_job_id_and_does_not_poll(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run("vm", "start", "web", "--no-wait")
    assert result.exit_code == 0
    assert result.stdout == "job-1\n"
    assert result.stderr == ""
    assert fake.requests_to("GET", "/jobs") == []
    assert fake.vms["web"]["state"] == "Starting"


def test_invalid_transition_exits_4_with_the_allowed_requests(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Saved")
    result = run("vm", "pause", "web")
    assert result.exit_code == 4
    assert result.stderr == (
        "error: cannot pause VM 'web': it is Saved; allowed in this state: start\n"
    )
    assert fake.jobs == {}


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [("host_error", 6), ("admission_refused", 4), ("internal_error", 6), ("not_found", 3)],
)
def test_failed_job_shows_its_error_and_exits_per_its_code(
    fake: FakeService, run: Run, code: str, exit_code: int
) -> None:
    fake.add_vm("web")
    message = "QEMU exited with status 1: could not open disk; VM left Off"
    fake.fail_jobs["web"] = {"code": code, "message": message, "details": {}}
    result = run("vm", "start", "web")
    assert result.exit_code == exit_code
    assert result.stdout == ""
    assert result.stderr.splitlines()[-2:] == ["start web: failed 70%", f"error: {message}"]
    assert fake.vms["web"]["state"] == "Off"


def test_host_shutdown_runs_automatic_stop_actions(fake: FakeService, run: Run) -> None:
    fake.add_vm("a", "Running", automatic_stop={"action": "save"})
    fake.add_vm("b", "Paused", automatic_stop={"action": "turn_off"})
    fake.add_vm("c", "Off")
    result = run("host", "shutdown")
    assert result.exit_code == 0, result.output
    assert result.stdout == "a: Saved\nb: Off\nc: Off\n"
    assert result.stderr.splitlines() == [
        line.format(label="host shutdown") for line in PLAIN_PROGRESS
    ]


def test_host_shutdown_failure_exits_with_its_code(fake: FakeService, run: Run) -> None:
    fake.fail_jobs[""] = {"code": "host_error", "message": "could not save a", "details": {}}
    result = run("host", "shutdown")
    assert result.exit_code == 6
    assert result.stderr.endswith("error: could not save a\n")
