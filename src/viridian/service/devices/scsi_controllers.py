"""``vm scsi add|remove``: a VM's SCSI controllers (Hyper-V's "Add Hardware → SCSI
Controller"; docs/api.md, "Devices").

A new VM has no SCSI controller. Controllers are added and removed only while the VM is
Off (as in Hyper-V generation 1; once one exists, SCSI hard disks on it can be added and
removed while the VM runs), up to the model's limit. A controller that still holds hard
disks is not removed: the refusal names them. The pure edits here return a *patch* for
the service's one settings path, like :mod:`.edits`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.model import ScsiController, VMSettings, limits, to_dict
from viridian.model.states import VMState

Patch = dict[str, Any]
ALLOWED_NUMBERS = f"0..{limits.SCSI_CONTROLLERS - 1}"


def numbers(settings: VMSettings) -> list[int]:
    """The numbers of the VM's SCSI controllers, ascending."""
    return sorted(c.controller for c in settings.scsi)


def _patch(settings: VMSettings, controllers: tuple[ScsiController, ...]) -> Patch:
    """The patch giving the VM ``controllers`` (API dict shape)."""
    return {"scsi": to_dict(replace(settings, scsi=controllers))["scsi"]}


def add_controller(settings: VMSettings, number: int | None) -> tuple[Patch, int]:
    """(patch adding SCSI controller ``number`` — the lowest free one when None —, its number).

    :raises Conflict: the VM has the most controllers allowed, or ``number`` exists.
    :raises InvalidSetting: ``number`` is outside 0..limit-1.
    """
    have = numbers(settings)
    if len(have) >= limits.SCSI_CONTROLLERS:
        raise Conflict(
            f"the VM already has {len(have)} SCSI controllers, the most a VM can have "
            f"({limits.SCSI_CONTROLLERS}); each holds up to "
            f"{limits.SCSI_DISKS_PER_CONTROLLER} hard disks; nothing was changed",
            controllers=have,
        )
    if number is None:
        number = min(set(range(limits.SCSI_CONTROLLERS)) - set(have))
    if not 0 <= number < limits.SCSI_CONTROLLERS:
        raise InvalidSetting("controller", number, ALLOWED_NUMBERS)
    if number in have:
        free = ", ".join(str(n) for n in range(limits.SCSI_CONTROLLERS) if n not in have)
        raise Conflict(
            f"the VM already has SCSI controller {number}; free controller numbers: {free}; "
            "nothing was changed",
            controller=number,
        )
    added = sorted([*settings.scsi, ScsiController(number)], key=lambda c: c.controller)
    return _patch(settings, tuple(added)), number


def remove_controller(settings: VMSettings, number: int | None) -> tuple[Patch, int]:
    """(patch removing SCSI controller ``number`` — the only one when None —, its number).

    :raises NotFound: the VM has no such controller (or none at all).
    :raises BadRequest: ``number`` is None and the VM has several controllers.
    :raises Conflict: hard disks are still attached to it (named, with their locations).
    """
    have = numbers(settings)
    listed = ", ".join(str(n) for n in have) or "none"
    if number is None:
        if len(have) != 1:
            raise (NotFound if not have else BadRequest)(
                f"the VM has {len(have)} SCSI controllers ({listed}); "
                + ("there is nothing to remove" if not have else "name one with --controller N")
            )
        number = have[0]
    if number not in have:
        raise NotFound(
            f"the VM has no SCSI controller {number}; its SCSI controllers: {listed}",
            controller=number,
        )
    controller = next(c for c in settings.scsi if c.controller == number)
    if controller.disks:
        attached = ", ".join(f"{d.path} at SCSI {number}:{d.location}" for d in controller.disks)
        raise Conflict(
            f"SCSI controller {number} still holds {len(controller.disks)} hard disk(s): "
            f"{attached}; remove them first (viridian vm disk remove NAME --controller scsi "
            f"--location {number}:L); nothing was changed",
            controller=number,
            disks=[d.path for d in controller.disks],
        )
    return _patch(settings, tuple(c for c in settings.scsi if c.controller != number)), number


def require_off(vm: str, state: VMState, verb: str) -> None:
    """:raises Conflict: ``state`` is not Off — SCSI controllers change only while Off."""
    if state is not VMState.OFF:
        raise Conflict(
            f"cannot {verb} a SCSI controller of VM '{vm}' while it is {state.value}: "
            "SCSI controllers are added and removed only while the VM is Off, as in Hyper-V "
            "(hard disks on an existing SCSI controller can be added and removed while it "
            "runs); turn it off first (viridian vm stop or vm shutdown); nothing was changed",
            vm=vm,
            state=state.value,
        )
