"""VM states and requests, with Hyper-V's names and ``EnabledState`` codes.

Steady states carry the WMI v2 ``Msvm_ComputerSystem.EnabledState`` codes (CIM
``EnabledState``): Running 2 (Enabled), Off 3 (Disabled), Stopping 4 (Shutting Down),
Saved 6 (Enabled but Offline), Paused 9 (Quiesce), Starting 10.

The v2 namespace has no codes for the transitional states a job passes through, so
viridian shows Hyper-V **v1** vendor codes (``Msvm_ComputerSystem`` in
``root\\virtualization``): Saving 32773, Pausing 32776, Resuming 32777. Hyper-V has no
"Resetting" state (a reset is instantaneous there); viridian shows 32779 for it. Note that
Microsoft's ``RequestStateChange`` documentation assigns 32779 to *FastSaved* in later
Hyper-V versions — a client that decodes codes with that table would misread it.
ShuttingDown (graceful shut down) shares code 4 with Stopping (turn off), as in CIM.

:data:`TRANSITIONS` is the one place that says which request is allowed in which state,
which transitional state is shown while its job runs and which state it ends in.
Transitional states allow no request (requests for a busy VM queue in the service), but
for one: Turn Off while a guest shuts down, as in Hyper-V — a guest that hangs in its shut
down must not hold the admin until the shut down's timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from viridian.errors import InvalidTransition


class VMState(Enum):
    """A VM's state; ``value`` is Hyper-V's name, :attr:`enabled_state` its code."""

    RUNNING = "Running"
    OFF = "Off"
    STOPPING = "Stopping"
    SHUTTING_DOWN = "ShuttingDown"
    SAVED = "Saved"
    PAUSED = "Paused"
    STARTING = "Starting"
    SAVING = "Saving"
    PAUSING = "Pausing"
    RESUMING = "Resuming"
    RESETTING = "Resetting"

    @property
    def enabled_state(self) -> int:
        """The ``EnabledState`` code shown by the API."""
        return _ENABLED_STATE[self]

    @property
    def is_transitional(self) -> bool:
        """True while a job runs (requests are queued behind it; only a shut down takes
        one at once: Turn Off, as Hyper-V allows while a guest shuts down)."""
        return self not in _STEADY

    @classmethod
    def from_name(cls, name: str) -> VMState:
        """The state called ``name`` (e.g. "Saved"); raises ValueError if unknown."""
        return cls(name)


_STEADY = frozenset({VMState.RUNNING, VMState.OFF, VMState.SAVED, VMState.PAUSED})

_ENABLED_STATE: Mapping[VMState, int] = MappingProxyType(
    {
        VMState.RUNNING: 2,
        VMState.OFF: 3,
        VMState.STOPPING: 4,
        VMState.SHUTTING_DOWN: 4,
        VMState.SAVED: 6,
        VMState.PAUSED: 9,
        VMState.STARTING: 10,
        VMState.SAVING: 32773,
        VMState.PAUSING: 32776,
        VMState.RESUMING: 32777,
        VMState.RESETTING: 32779,
    }
)


class Request(Enum):
    """A state-change request; ``value`` is the API/CLI verb."""

    START = "start"  # from Saved: restore
    STOP = "stop"  # Turn Off: immediate, like pulling the plug
    SHUTDOWN = "shutdown"  # graceful, through the guest
    SAVE = "save"
    PAUSE = "pause"
    RESUME = "resume"
    RESET = "reset"


@dataclass(frozen=True)
class Transition:
    """What a request does: ``during`` is shown while its job runs, ``final`` after."""

    request: Request
    during: VMState
    final: VMState


def _table(*rows: tuple[Request, VMState, VMState]) -> Mapping[Request, Transition]:
    return MappingProxyType({r: Transition(r, during, final) for r, during, final in rows})


_S = VMState
TRANSITIONS: Mapping[VMState, Mapping[Request, Transition]] = MappingProxyType(
    {
        _S.OFF: _table((Request.START, _S.STARTING, _S.RUNNING)),
        _S.SAVED: _table((Request.START, _S.STARTING, _S.RUNNING)),
        _S.RUNNING: _table(
            (Request.STOP, _S.STOPPING, _S.OFF),
            (Request.SHUTDOWN, _S.SHUTTING_DOWN, _S.OFF),
            (Request.SAVE, _S.SAVING, _S.SAVED),
            (Request.PAUSE, _S.PAUSING, _S.PAUSED),
            (Request.RESET, _S.RESETTING, _S.RUNNING),
        ),
        _S.SHUTTING_DOWN: _table((Request.STOP, _S.STOPPING, _S.OFF)),
        _S.PAUSED: _table(
            (Request.RESUME, _S.RESUMING, _S.RUNNING),
            (Request.STOP, _S.STOPPING, _S.OFF),
            (Request.SAVE, _S.SAVING, _S.SAVED),
            (Request.RESET, _S.RESETTING, _S.RUNNING),
        ),
    }
)


def allowed_requests(state: VMState) -> list[Request]:
    """The requests ``state`` accepts, in the table's order (empty while transitional)."""
    return list(TRANSITIONS.get(state, {}))


def check_request(vm_name: str, state: VMState, request: Request) -> Transition:
    """The transition ``request`` starts from ``state``.

    Raises :class:`InvalidTransition` naming the VM, the current state and the requests
    allowed in it.
    """
    transition = TRANSITIONS.get(state, {}).get(request)
    if transition is None:
        allowed = [r.value for r in allowed_requests(state)]
        raise InvalidTransition(vm_name, request.value, state.value, allowed)
    return transition
