"""The pure rules of migration: which moves are refused and why (the refusal names what
was wrong), and what QEMU is told for a live move (QEMU 7.2 ``qapi/migration.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from viridian.errors import BadRequest, Conflict
from viridian.model.states import VMState
from viridian.qemu.migration import LiveTuning, capabilities_for, parameters_for
from viridian.qemu.monitor import MIGRATION_MAX_BANDWIDTH
from viridian.service.migration.bodies import MoveRequest
from viridian.service.migration.outgoing import check_movable
from viridian.service.migration.peer import check_target_url


@dataclass
class _Record:
    name: str = "web"


@dataclass
class _VM:
    """Just what check_movable reads of a LiveVM (a stand-in for a unit test)."""

    state: VMState
    storage_daemon_serves: bool = False
    record: _Record = field(default_factory=_Record)


def _spec(**fields: Any) -> MoveRequest:
    return MoveRequest(to="http://127.0.0.1:1", token="t", **fields)


def _refusal(vm: _VM, spec: MoveRequest, checkpoints: bool = False) -> str:
    with pytest.raises((Conflict, BadRequest)) as caught:
        check_movable(vm, spec, checkpoints)  # type: ignore[arg-type]
    return str(caught.value)


def test_live_needs_running_and_names_the_state() -> None:
    message = _refusal(_VM(VMState.SAVED), _spec(mode="live"))
    assert "it is Saved" in message and "needs it Running" in message


def test_quick_moves_any_settled_state_but_not_with_checkpoints() -> None:
    for state in (VMState.RUNNING, VMState.PAUSED, VMState.SAVED, VMState.OFF):
        check_movable(_VM(state), _spec(mode="quick"), False)  # type: ignore[arg-type]
    assert "has checkpoints" in _refusal(_VM(VMState.OFF), _spec(mode="quick"), True)


def test_a_daemon_served_vm_moves_quick_only_and_says_why() -> None:
    message = _refusal(_VM(VMState.RUNNING, storage_daemon_serves=True), _spec(mode="live"))
    assert "storage daemon" in message and "QEMU 7.2" in message and "quick" in message
    check_movable(_VM(VMState.RUNNING, True), _spec(mode="quick"), False)  # type: ignore[arg-type]


def test_live_options_on_a_quick_move_and_postcopy_with_storage_are_refused() -> None:
    assert "live-move options" in _refusal(_VM(VMState.OFF), _spec(mode="quick", postcopy=True))
    assert "cannot be combined" in _refusal(
        _VM(VMState.RUNNING), _spec(mode="live", postcopy=True, with_storage=True))


def test_target_url_must_be_http() -> None:
    assert check_target_url("http://h:1/") == "http://h:1"
    for bad in ("ftp://h", "h:1", "http://"):
        with pytest.raises(BadRequest, match="http://HOST:PORT"):
            check_target_url(bad)


def test_what_qemu_is_told() -> None:
    tuning = LiveTuning(auto_converge=True, bandwidth_mib_s=10, downtime_limit_ms=50,
                        postcopy=True)
    assert capabilities_for(tuning, incoming=False) == [
        {"capability": "events", "state": True}, {"capability": "postcopy-ram", "state": True},
        {"capability": "auto-converge", "state": True}]
    assert capabilities_for(tuning, incoming=True) == [
        {"capability": "events", "state": True}, {"capability": "postcopy-ram", "state": True}]
    assert parameters_for(tuning) == {"max-bandwidth": 10 * 1024 * 1024, "downtime-limit": 50}
    assert parameters_for(LiveTuning()) == {"max-bandwidth": MIGRATION_MAX_BANDWIDTH}
