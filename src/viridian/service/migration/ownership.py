"""Who owns a VM while it moves (docs/architecture.md, "Migration").

The target calls :meth:`Ownership.hand_over` at the commit of a move, after the guest's
memory (or saved state) arrived and before the guest runs there; a refusal aborts the move
and the VM runs on at the source. Without a cluster (:class:`HostRegistration`) the
catalogs are the record: the VM is registered on the target only at the commit and
unregistered on the source right after, so it is registered on two hosts at most for that
instant and runs on exactly one.
"""

from __future__ import annotations

from typing import Protocol


class Ownership(Protocol):
    """Hands the ownership of one VM from the source host to the target host."""

    async def hand_over(self, vm_id: str, source: str, target: str) -> None:
        """Make ``target`` the owner of ``vm_id`` in one step, or raise (nothing changed).

        :raises ViridianError: the hand-over was refused (e.g. ``source`` no longer owns it).
        """


class HostRegistration:
    """No cluster: each host's catalog says what it owns; the registration order of the
    move is the hand-over, so there is nothing more to record."""

    async def hand_over(self, vm_id: str, source: str, target: str) -> None:
        return None
