"""The narrow, typed view of the service core that capabilities get
(docs/architecture.md, "How to add a capability").

A capability never holds the core itself: it gets a :class:`ServiceContext` — find a
VM, list them, admit a start, queue a job, change a VM's settings through the one
settings path, the catalog, the data folder and the host's facts. The core
(:class:`viridian.service.core.ServiceCore`) is the only implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from viridian.host.admission import AdmissionPolicy, HostLoad
from viridian.qemu.capabilities import HostCapabilities
from viridian.service.catalog import Catalog
from viridian.service.jobs import JobRunner

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM


class ServiceContext(Protocol):
    """What the core offers to capabilities."""

    @property
    def data_dir(self) -> Path:
        """The service's data folder (catalog, VM folders, runtime folders)."""

    @property
    def catalog(self) -> Catalog:
        """The catalog (SQLite); capabilities with tables of their own add them here."""

    @property
    def jobs(self) -> JobRunner:
        """The job runner: ``submit`` a job, ``queue_for`` a VM's queue, ``busy``."""

    @property
    def host(self) -> HostCapabilities:
        """What QEMU and the accelerator on this host can do."""

    @property
    def policy(self) -> AdmissionPolicy:
        """The host's admission policy (memory reserve, processor ratio)."""

    def find_vm(self, ref: str) -> LiveVM:
        """The VM named ``ref`` (or with id ``ref``); raises :class:`NotFound`."""

    def vms(self) -> Mapping[str, LiveVM]:
        """Every VM the service manages, by id (read-only view)."""

    def admit(self, vm: LiveVM) -> None:
        """Admission control and reservation for starting ``vm``; raises
        :class:`AdmissionRefused` with the numbers."""

    def check_disk_work(self, vm: LiveVM, action: str) -> None:
        """Every capability's ``check_disk_work``: before ``action`` opens or rewrites the
        disk files of ``vm`` (not running here); raises the first refusal."""

    def host_load(self) -> HostLoad:
        """What running VMs hold of the host now."""

    async def apply_settings(self, vm: LiveVM, patch: Mapping[str, Any]) -> None:
        """Validate and apply a settings ``patch`` (API dict shape) to ``vm``; the caller
        holds the VM's queue. A refusal changes nothing."""

    async def update_vm(self, ref: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`apply_settings` under the VM's queue; returns the vm object."""

    def settings_committed(self, vm: LiveVM) -> None:
        """The core's settings-changed notification: every capability's
        ``settings_changed`` (e.g. the VM's ``vm.json``). :meth:`apply_settings` sends it
        itself; a capability that commits settings another way (applying a checkpoint)
        sends it after its commit."""
