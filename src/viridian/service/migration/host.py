"""What the migration capability needs of the service core beyond
:class:`~viridian.service.context.ServiceContext` (the core implements it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from viridian.model import VMSettings
from viridian.model.states import Request
from viridian.service.capability import Capability
from viridian.service.catalog import VMRecord
from viridian.service.context import ServiceContext
from viridian.service.jobs import Operation

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM


class MigrationHost(ServiceContext, Protocol):
    """The core as a migration's source or target."""

    capabilities: tuple[Capability, ...]
    """Every capability (the migration finds the cluster's among them)."""

    def checked_registration(self, vm_id: str, name: str, settings: dict[str, Any], *,
                             replacing: bool = False) -> VMSettings:
        """Settings of a VM about to be registered here, checked like a new VM's;
        ``replacing``: the VM registered with ``vm_id`` makes way for it at the commit."""

    def stage_incoming(self, record: VMRecord) -> LiveVM:
        """A VM migrating here, not registered yet."""

    def commit_incoming(self, live: LiveVM) -> None:
        """Register a staged VM."""

    def forget(self, live: LiveVM) -> None:
        """Unregister a VM (or drop a staged one), keeping every file."""

    def unregister_older_copy(self, live: LiveVM) -> None:
        """Unregister this host's older copy of a VM that moves here, touching neither
        its files nor what capabilities hold for its id."""

    def operation(self, live: LiveVM, request: Request) -> Operation:
        """The lifecycle operation ``request`` of ``live`` as a job body (state checks,
        admission for a start)."""

    def settings_committed(self, vm: LiveVM) -> None:
        """Every capability's ``settings_changed`` (the VM's vm.json)."""

    def has_checkpoints(self, vm_id: str) -> bool:
        """Whether the VM has checkpoints (their tables do not move with it)."""
