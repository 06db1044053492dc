"""VM states, Hyper-V's EnabledState codes and the transition table (every state x request)."""

from __future__ import annotations

import pytest

from viridian.errors import InvalidTransition
from viridian.model import Request, VMState, allowed_requests, check_request

S, R = VMState, Request

CODES = {
    S.RUNNING: 2,
    S.OFF: 3,
    S.STOPPING: 4,
    S.SHUTTING_DOWN: 4,
    S.SAVED: 6,
    S.PAUSED: 9,
    S.STARTING: 10,
    S.SAVING: 32773,
    S.PAUSING: 32776,
    S.RESUMING: 32777,
    S.RESETTING: 32779,
}

# (state, request) -> (during, final); every pair not listed must be refused.
EXPECTED = {
    (S.OFF, R.START): (S.STARTING, S.RUNNING),
    (S.SAVED, R.START): (S.STARTING, S.RUNNING),
    (S.RUNNING, R.STOP): (S.STOPPING, S.OFF),
    (S.RUNNING, R.SHUTDOWN): (S.SHUTTING_DOWN, S.OFF),
    (S.RUNNING, R.SAVE): (S.SAVING, S.SAVED),
    (S.RUNNING, R.PAUSE): (S.PAUSING, S.PAUSED),
    (S.RUNNING, R.RESET): (S.RESETTING, S.RUNNING),
    (S.PAUSED, R.RESUME): (S.RESUMING, S.RUNNING),
    (S.PAUSED, R.STOP): (S.STOPPING, S.OFF),
    (S.PAUSED, R.SAVE): (S.SAVING, S.SAVED),
    (S.PAUSED, R.RESET): (S.RESETTING, S.RUNNING),
    (S.SHUTTING_DOWN, R.STOP): (S.STOPPING, S.OFF),  # Turn Off while the guest shuts down
}

ALLOWED_TEXT = {
    S.OFF: "start",
    S.SAVED: "start",
    S.RUNNING: "stop, shutdown, save, pause, reset",
    S.PAUSED: "resume, stop, save, reset",
    S.SHUTTING_DOWN: "stop",
}


def test_enabled_state_codes() -> None:
    assert {state: state.enabled_state for state in VMState} == CODES


def test_names_are_hyper_v_names() -> None:
    assert [s.value for s in VMState] == [
        "Running", "Off", "Stopping", "ShuttingDown", "Saved", "Paused",
        "Starting", "Saving", "Pausing", "Resuming", "Resetting",
    ]  # fmt: skip
    assert VMState.from_name("Saved") is S.SAVED


@pytest.mark.parametrize("state", list(VMState), ids=lambda s: s.value)
@pytest.mark.parametrize("request_", list(Request), ids=lambda r: r.value)
def test_every_state_and_request(state: VMState, request_: Request) -> None:
    expected = EXPECTED.get((state, request_))
    if expected is not None:
        transition = check_request("vm1", state, request_)
        assert (transition.during, transition.final) == expected
        assert transition.during.is_transitional and not transition.final.is_transitional
        return
    with pytest.raises(InvalidTransition) as caught:
        check_request("vm1", state, request_)
    allowed = ALLOWED_TEXT.get(state, "none")
    assert str(caught.value) == (
        f"cannot {request_.value} VM 'vm1': it is {state.value}; allowed in this state: {allowed}"
    )
    assert caught.value.details["state"] == state.value


def test_transitional_states_allow_nothing_but_turn_off_while_shutting_down() -> None:
    transitional = {s for s in VMState if s.is_transitional}
    assert transitional == {
        S.STOPPING, S.SHUTTING_DOWN, S.STARTING, S.SAVING, S.PAUSING, S.RESUMING, S.RESETTING,
    }  # fmt: skip
    for state in transitional - {S.SHUTTING_DOWN}:
        assert allowed_requests(state) == []
    assert allowed_requests(S.SHUTTING_DOWN) == [Request.STOP]  # Hyper-V's Turn Off
    assert check_request("web1", S.SHUTTING_DOWN, Request.STOP).final is S.OFF


def test_allowed_requests_in_steady_states() -> None:
    for state, text in ALLOWED_TEXT.items():
        assert ", ".join(r.value for r in allowed_requests(state)) == text
