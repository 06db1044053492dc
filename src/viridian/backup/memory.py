"""Whether and how a backup point holds a VM's memory state (``backup new --with-memory``;
docs/architecture.md, "Backup", "Memory"). Pure: the service (``service.backup.take``)
runs the steps chosen here.

- A Running or Paused VM's memory is *saved* for the point: the guest is paused, its
  memory and device state written to a file (QEMU ``migrate``), the disks' point in
  time started, and the guest runs again (:class:`SaveOrder`).
- A Saved VM's saved-state file already is its memory, of the same instant as its
  disks (nothing writes them while it is Saved): the point copies it.
- Any other VM has no memory to include (Off), or is between states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from viridian.model.states import VMState

MemorySource = Literal["save", "saved_state"]

@dataclass(frozen=True)
class MemoryPlan:
    """How the point gets the VM's memory: ``source`` None means it cannot, and
    ``reason`` says why in words a user can act on."""

    source: MemorySource | None
    reason: str = ""


def memory_plan(state: VMState, qemu_runs: bool, has_saved_state: bool) -> MemoryPlan:
    """The plan for a VM in ``state`` (``qemu_runs``: it has a QEMU process;
    ``has_saved_state``: its saved-state file exists)."""
    if state in (VMState.RUNNING, VMState.PAUSED):
        if qemu_runs:
            return MemoryPlan("save")
        return MemoryPlan(None, f"it is {state.value} but has no QEMU process")
    if state is VMState.SAVED:
        if has_saved_state:
            return MemoryPlan("saved_state")
        return MemoryPlan(None, "it is Saved but its saved-state file is missing")
    if state is VMState.OFF:
        return MemoryPlan(None, "it is Off: it has no memory state")
    return MemoryPlan(None, f"it is {state.value}: memory is included only for a Running, "
                            "Paused or Saved VM")


@dataclass(frozen=True)
class SaveOrder:
    """How a memory save is ordered with the disks' point in time, so that both are of
    one instant and the guest gets writable disks back. Always: pause the vCPUs, save
    the memory (QEMU ``migrate`` to the point's file; QEMU then holds its own images
    *inactive*, run state ``postmigrate``), start the disks' transaction, ``cont``. The
    two choices around ``cont`` are this object's fields.

    The memory is saved *before* the disks' transaction: QEMU 7.2 completes a save by
    inactivating every block node, which fails while a backup job's copy-before-write
    filter holds a writable staging node ("bdrv_inactivate_all() failed"). After the save
    the transaction is accepted on the inactive nodes (the jobs read them, and write only
    the new, active staging nodes)."""

    hold_jobs: bool
    """The point's backup jobs are paused across ``cont`` and resumed after: ``cont``
    re-activates the images — a qcow2 by reopening its metadata — under them. Only when
    QEMU itself holds the images (not when a storage daemon serves them)."""
    pause_again: bool
    """The VM was Paused: it is paused again right after ``cont`` (QEMU 7.2 cannot
    re-activate images without running the vCPUs, so it runs for that instant, after the
    point)."""


def save_order(images_in_qemu: bool, was_running: bool) -> SaveOrder:
    """The order for a VM whose images QEMU opens itself (``images_in_qemu``) or its
    storage daemon serves, Running (``was_running``) or Paused."""
    return SaveOrder(hold_jobs=images_in_qemu, pause_again=not was_running)
