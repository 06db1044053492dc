"""A job wait survives a busy service: a poll that times out is asked again (the job goes
on in the service); only several unanswered polls in a row, or a refused connection, end
the wait with the unreachable error (exit 7)."""

from __future__ import annotations

from typing import Any

import pytest

from viridian.cli.client import (
    WAIT_TIMEOUTS_TOLERATED,
    ApiClient,
    ServiceUnreachable,
    wait_for_job,
)


class SlowService:
    """Answers each poll from a script: an exception to raise or a job to return."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.polls = 0

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = 0) -> Any:
        self.polls += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _timeout() -> ServiceUnreachable:
    return ServiceUnreachable("did not answer within 30 s", url="u", timed_out=True)


def _wait(service: SlowService) -> dict[str, Any]:
    seen: list[str] = []
    client: ApiClient = service  # type: ignore[assignment]  # duck-typed stand-in
    return wait_for_job(client, {"id": "j1", "state": "running"},
                        lambda job: seen.append(job["state"]))


def test_timed_out_polls_are_asked_again_until_the_job_ends() -> None:
    done = {"id": "j1", "state": "completed"}
    service = SlowService([_timeout(), {"id": "j1", "state": "running"}, _timeout(),
                           _timeout(), done])
    assert _wait(service) == done and service.polls == 5


def test_too_many_silent_polls_in_a_row_end_the_wait() -> None:
    service = SlowService([_timeout() for _ in range(WAIT_TIMEOUTS_TOLERATED)])
    with pytest.raises(ServiceUnreachable, match="did not answer"):
        _wait(service)
    assert service.polls == WAIT_TIMEOUTS_TOLERATED


def test_a_refused_connection_ends_the_wait_at_once() -> None:
    service = SlowService([ServiceUnreachable("cannot be reached", url="u", timed_out=False)])
    with pytest.raises(ServiceUnreachable, match="cannot be reached"):
        _wait(service)
    assert service.polls == 1
