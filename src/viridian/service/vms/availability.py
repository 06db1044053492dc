"""Which requests a VM can take now, and why the others cannot (docs/api.md, "VMs").

The state table (:data:`viridian.model.states.TRANSITIONS`) says what a state allows;
some VMs cannot do all of it: QEMU cannot save the memory of a VM with VHD/VHDX disks
unless its storage daemon serves them (host setting ``storage_daemon``, on by default),
nor of one whose qcow2 disk sits on a VHD/VHDX backing file.
The vm object carries both halves, so a client offers only what can work and can say
why the rest cannot (the console disables Save with :func:`unavailable`'s reason):

* ``allowed`` — the requests that can work now (:func:`allowed`), plus
  ``delete-saved-state`` while Saved;
* ``unavailable`` — request → reason, for requests this VM cannot do at all
  (whatever its state), e.g. ``{"save": "QEMU cannot save the memory of …"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from viridian.errors import Conflict, InvalidTransition
from viridian.model.states import Request, VMState, allowed_requests
from viridian.service.storage.checks import backing_chain_blocker, vhd_disks_blocker

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

DELETE_SAVED_STATE = "delete-saved-state"
"""Hyper-V's "Delete Saved State": Saved → Off, the saved-state file removed."""
STORAGE_SERVICE_NOTE = ("it has no storage daemon (host.json \"storage_daemon\": \"off\", "
                        "or a VHD hot-added while it ran without one); with "
                        "\"storage_daemon\": \"vhd\" (the default) its next start gets one")


def unavailable(live: LiveVM) -> dict[str, str]:
    """Requests this VM cannot do in any state, each with the reason (a VHD/VHDX disk of
    its own: the storage daemon note too; one in a backing chain: that reason alone)."""
    if live.storage_daemon_serves:
        return {}
    own = vhd_disks_blocker(live.record.settings)
    if own:
        return {Request.SAVE.value: f"{own}; {STORAGE_SERVICE_NOTE}"}
    chain = backing_chain_blocker(live.record.settings)
    return {Request.SAVE.value: chain} if chain else {}


def allowed(live: LiveVM) -> list[str]:
    """The requests that can work in the VM's current state, in the state table's order
    (empty while a job runs: the VM shows a transitional state)."""
    blocked = unavailable(live)
    names = [r.value for r in allowed_requests(live.state) if r.value not in blocked]
    return [*names, DELETE_SAVED_STATE] if live.state is VMState.SAVED else names


def check_save(live: LiveVM) -> None:
    """Raise :class:`Conflict` when this VM cannot be saved, saying why, what to do
    instead and that nothing was changed."""
    why = unavailable(live).get(Request.SAVE.value)
    if why:
        raise Conflict(f"cannot save VM '{live.record.name}': {why}; shut it down or turn it "
                       "off instead; nothing was changed", vm=live.record.name)


def check_delete_saved_state(live: LiveVM) -> None:
    """Raise :class:`InvalidTransition` (naming the state and what it allows) unless the
    VM is Saved."""
    if live.state is not VMState.SAVED:
        raise InvalidTransition(live.record.name, "delete the saved state of", live.state.value,
                                allowed(live))


def check(live: LiveVM, request: Request) -> None:
    """Raise unless ``request`` can work now: :class:`InvalidTransition` naming the state
    and only the requests that can work in it, or :func:`check_save`'s refusal."""
    if request not in allowed_requests(live.state):
        raise InvalidTransition(live.record.name, request.value, live.state.value, allowed(live))
    if request is Request.SAVE:
        check_save(live)
