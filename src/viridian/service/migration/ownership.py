"""Who owns a VM while it moves (docs/architecture.md, "Migration" and "Failover cluster:
moves of HA VMs").

The target calls :meth:`Ownership.hand_over` at the commit of a move, after the guest's
memory (or saved state) arrived and before the guest runs there; a refusal aborts the move
and the VM runs on at the source. Without a cluster (:class:`HostRegistration`) the
catalogs are the record: the VM is registered on the target only at the commit and
unregistered on the source right after, so it is registered on two hosts at most for that
instant and runs on exactly one. In a cluster an HA VM's owner key moves from the source's
lease to the target's in one etcd transaction
(:class:`viridian.service.migration.cluster_move.ClusterOwnership`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Holder:
    """A host as ownership knows it: its name (cluster host name, else the machine's
    host name) and, in a cluster, the lease its owner keys are bound to (0: none)."""

    host: str
    lease: int = 0


class Ownership(Protocol):
    """Hands the ownership of one VM from the source host to the target host."""

    def me(self) -> Holder:
        """This host, as a source names itself to its target."""

    async def hand_over(self, vm_id: str, ha: bool, source: Holder) -> None:
        """Make this host the owner of ``vm_id`` in one step, or raise (nothing changed).

        :raises ViridianError: the hand-over was refused (``source`` no longer owns it).
        """

    async def hand_back(self, vm_id: str, ha: bool, source: Holder) -> bool:
        """Undo :meth:`hand_over` (the target could not run the VM); False when the source
        cannot take it back (its lease is gone): then this host keeps it."""

    async def holds(self, vm_id: str, ha: bool, holder: Holder) -> bool:
        """Whether ``holder`` still owns ``vm_id`` (a source resumes its copy only then)."""

    def moving(self, vm_id: str, ha: bool, on: bool) -> None:
        """A move of ``vm_id`` starts (``on``) or ends on this host: the cluster agent
        neither starts, kills nor drains it meanwhile, and its QEMU ending is no stop."""


class HostRegistration:
    """No cluster: each host's catalog says what it owns; the registration order of the
    move is the hand-over, so there is nothing more to record."""

    def me(self) -> Holder:
        return Holder(socket.gethostname())

    async def hand_over(self, vm_id: str, ha: bool, source: Holder) -> None:
        return None

    async def hand_back(self, vm_id: str, ha: bool, source: Holder) -> bool:
        return True

    async def holds(self, vm_id: str, ha: bool, holder: Holder) -> bool:
        return True

    def moving(self, vm_id: str, ha: bool, on: bool) -> None:
        return None
