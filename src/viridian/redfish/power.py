"""VM states as Redfish power states, and ``ComputerSystem.Reset`` types as viridian's
requests (docs/architecture.md, "VM states"; Resource schema ``PowerState``,
``ResetType``)."""

from __future__ import annotations

from viridian.model.states import Request, VMState

POWER_STATE: dict[VMState, str] = {
    VMState.RUNNING: "On", VMState.OFF: "Off", VMState.SAVED: "Off",
    VMState.PAUSED: "Paused", VMState.STARTING: "PoweringOn",
    VMState.STOPPING: "PoweringOff", VMState.SHUTTING_DOWN: "PoweringOff",
    VMState.SAVING: "PoweringOff", VMState.PAUSING: "On", VMState.RESUMING: "Paused",
    VMState.RESETTING: "On",
}

# Status.State (Resource schema): Saved is "StandbyOffline" (the memory is kept on disk).
STATUS_STATE: dict[VMState, str] = {
    VMState.RUNNING: "Enabled", VMState.OFF: "Disabled", VMState.SAVED: "StandbyOffline",
    VMState.PAUSED: "Quiesced", VMState.STARTING: "Starting",
    VMState.STOPPING: "Disabled", VMState.SHUTTING_DOWN: "Disabled",
    VMState.SAVING: "StandbyOffline", VMState.PAUSING: "Quiesced",
    VMState.RESUMING: "Starting", VMState.RESETTING: "Enabled",
}

# ResetType → request; Suspend is Hyper-V's Save (memory to disk, the VM Saved).
RESET_TYPES: dict[str, Request] = {
    "On": Request.START, "ForceOff": Request.STOP, "GracefulShutdown": Request.SHUTDOWN,
    "ForceRestart": Request.RESET, "Pause": Request.PAUSE, "Resume": Request.RESUME,
    "Suspend": Request.SAVE,
}


def power_state(state: VMState) -> str:
    return POWER_STATE[state]


def status(state: VMState) -> dict[str, str]:
    """The ``Status`` object of a VM's resources."""
    return {"State": STATUS_STATE[state], "Health": "OK"}
