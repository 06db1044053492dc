"""The Redfish capability: serves ``/redfish`` (docs/architecture.md, "Redfish"), keeps
each VM's boot override and applies it to the settings QEMU starts with, and runs the
event hub."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.routing import Route

from viridian.access import AccessControl, Principal, Target
from viridian.model import VMSettings
from viridian.model.states import VMState
from viridian.redfish import boot
from viridian.redfish.boot import BootOverride
from viridian.redfish.devices import bios_patch
from viridian.redfish.messages import RedfishError, message, not_found
from viridian.redfish.systems import SystemView
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.devices.edits import set_dvd_media, set_floppy_media
from viridian.service.jobs import now_iso
from viridian.service.redfish.accounts import Accounts
from viridian.service.redfish.auth import RedfishAuth
from viridian.service.redfish.bios_settings import PendingBios
from viridian.service.redfish.boot_store import BootOverrides
from viridian.service.redfish.events import EventHub
from viridian.service.redfish.subscriptions import SubscriptionStore
from viridian.service.vms.live import LiveVM

META_UUID = "redfish_service_uuid"


class RedfishCore(ServiceContext, Protocol):
    """What Redfish needs of the core beyond the capability context: lifecycle requests
    (as jobs) and VM creation (docs/api.md, "VMs")."""

    def request(self, ref: str, action: str, *, timeout_s: float | None,
                turn_off_after_timeout: bool = False) -> dict[str, Any]: ...

    async def create_vm(self, name: str, patch: dict[str, Any], *, memory_mb: int | None,
                        processors: int | None, dvd: str | None, vhd: str | None,
                        new_vhd: Any = None) -> dict[str, Any]: ...


class RedfishCapability(Capability):
    name = "redfish"

    def __init__(self, core: RedfishCore) -> None:
        self.core = core
        self._auth: RedfishAuth | None = None
        self._accounts: Accounts | None = None
        self.events = EventHub(self._states, SubscriptionStore(core.catalog))
        self.pending_bios = PendingBios(core.catalog)
        self._boot = BootOverrides(core.catalog)
        self._launching: set[str] = set()
        known = core.catalog.get_meta(META_UUID)
        if known is None:
            known = str(uuid.uuid4())
            core.catalog.set_meta(META_UUID, known)
        self.service_uuid = known

    # --- capability moments -----------------------------------------------------------

    def attach(self, vm: LiveVM) -> None:
        vm.add_disk_view(self._boot_view)  # after the checkpoints' view

    async def prepare_start(self, vm: LiveVM) -> None:
        if vm.state is VMState.OFF and vm.record.id in self._boot:
            self._launching.add(vm.record.id)
        if vm.state is VMState.OFF:
            await self._apply_pending_bios(vm)

    async def _apply_pending_bios(self, vm: LiveVM) -> None:
        """Apply the VM's pending BIOS settings (the start job holds its queue)."""
        pending = self.pending_bios.get(vm.record.id)
        if not pending:
            return
        await self.core.apply_settings(vm, {"bios": bios_patch(pending)})
        self.pending_bios.clear(vm.record.id)
        self.pending_bios.applied[vm.record.id] = {
            "Time": now_iso(),
            "Messages": [message("Success")]}

    def adopted(self, vm: LiveVM) -> None:
        vm_id = vm.record.id
        if vm_id in self._launching:
            self._launching.discard(vm_id)
            if self._boot[vm_id].enabled == "Once":
                del self._boot[vm_id]

    def exited(self, vm: LiveVM) -> None:
        self.events.note_exit(vm.record.id)

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        self._boot.pop(vm.record.id, None)
        self.pending_bios.clear(vm.record.id)
        self.pending_bios.applied.pop(vm.record.id, None)

    def start(self) -> None:
        self.events.start()

    async def close(self) -> None:
        await self.events.close()
        if self._auth is not None:
            self._auth.close()

    def install_routes(self, app: FastAPI) -> None:
        """Serve ``/redfish`` with the app's access control (``app.state.access``, set by
        :func:`viridian.service.app.create_app`)."""
        from viridian.service.redfish.handlers import ROUTES
        from viridian.service.redfish.routes import RedfishApp
        access: AccessControl = app.state.access
        self._auth, self._accounts = RedfishAuth(access), Accounts(access)
        app.router.routes.insert(0, Route("/redfish{rest:path}", RedfishApp(self, ROUTES)))

    # --- what handlers use ------------------------------------------------------------

    @property
    def auth(self) -> RedfishAuth:
        assert self._auth is not None, "install_routes first"
        return self._auth

    @property
    def accounts(self) -> Accounts:
        assert self._accounts is not None, "install_routes first"
        return self._accounts

    def target(self, system_id: str | None) -> Target:
        """The access target of a request about ``system_id`` (None: the host)."""
        if system_id is None:
            return Target()
        vm = self.core.vms().get(system_id)
        if vm is None:
            return Target(vm=system_id)
        return self.auth.access.target(vm.record.name, vm.record.id)

    def authorize(self, principal: Principal, operation: str, system_id: str | None) -> None:
        """Return when allowed, else raise :class:`viridian.errors.Forbidden` (403
        ``InsufficientPrivilege`` at the Redfish boundary)."""
        self.auth.access.authorize(principal, operation, self.target(system_id))

    def audit(self, principal: Principal, operation: str, system_id: str | None,
              source: str, request: str, status: int) -> None:
        """One audit record of a Redfish request that changes state (or was refused)."""
        result = "ok" if status < 400 else ("denied" if status in (401, 403) else "failed")
        self.auth.access.audit.append(
            who=principal.user, realm=principal.realm, source=source, operation=operation,
            target=self.target(system_id).label(), result=result, status=status,
            request=request)

    def _boot_view(self, vm_id: str, settings: VMSettings) -> VMSettings:
        if vm_id not in self._launching:
            return settings
        return boot.apply(settings, self._boot[vm_id])

    def _states(self) -> Mapping[str, VMState]:
        return {vm_id: vm.state for vm_id, vm in self.core.vms().items()}

    def system_ids(self) -> list[str]:
        return sorted(self.core.vms(), key=lambda i: self.core.vms()[i].record.name)

    def live(self, system_id: str) -> LiveVM:
        vm = self.core.vms().get(system_id)
        if vm is None:
            raise not_found("ComputerSystem", system_id)
        return vm

    def view(self, system_id: str) -> SystemView:
        vm = self.live(system_id)
        rec = vm.record
        return SystemView(rec.id, rec.name, vm.state, rec.settings,
                          self._boot.get(rec.id, BootOverride()), rec.created_at)

    def set_boot(self, system_id: str, override: BootOverride) -> None:
        """Keep ``override`` for the VM's next start (Once) or every start (Continuous)."""
        settings = self.live(system_id).record.settings
        if override.active and boot.TARGETS[override.target] not in \
                settings.bios.startup_order:
            raise RedfishError(400, "PropertyValueNotInList", override.target,
                               "BootSourceOverrideTarget")
        if override.active:
            self._boot[system_id] = override
        else:
            self._boot.pop(system_id, None)

    async def set_media(self, system_id: str, media_id: str, path: str | None) -> None:
        """Insert (``path``) or eject (None) the DVD or floppy medium through the one
        settings path, under the VM's queue."""
        vm = self.live(system_id)
        async with self.core.jobs.queue_for(vm.record.id):
            settings = vm.record.settings
            patch = set_floppy_media(path) if media_id == "Floppy" else \
                set_dvd_media(settings, path, None)
            await self.core.apply_settings(vm, patch)
