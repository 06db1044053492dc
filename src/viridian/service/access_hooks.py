"""The service side of access (docs/architecture.md, "Access"): what a VM takes from its
owner's quota, the capability that refuses a settings change (or a new VM) that would
pass the requesting user's quota (it also closes the access store when the service stops),
and what a user may see of the console's event stream.

The requesting principal comes from :data:`viridian.service.auth.CURRENT_PRINCIPAL`
(set by the access gate for the request being served); changes made by the service on
its own (recovery, no request) are not counted against anyone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from viridian.access import AccessControl, Principal, Target
from viridian.access.quotas import Resources, check_quota, usage_of
from viridian.access.routes import PRINCIPAL_SCOPE_KEY
from viridian.model import VMSettings
from viridian.model.choices import DriveKind
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.capability import Capability, SettingsChange

if TYPE_CHECKING:
    from viridian.service.core import ServiceCore

__all__ = ["AccessHooks", "console_viewer", "vm_resources"]

MB = 1024 * 1024


def _disk_paths(settings: VMSettings) -> set[str]:
    found = {d.path for d in settings.ide if d.kind == DriveKind.HARD_DISK and d.path}
    found |= {d.path for c in settings.scsi for d in c.disks}
    return found


def _capacity_mb(paths: Iterable[str]) -> int:
    """Virtual size of each disk (its header), else the file's size; rounded up to MB."""
    from viridian.disks.inspect import inspect

    total = 0
    for path in paths:
        try:
            total += inspect(path).virtual_size
        except Exception:  # an unreadable disk counts by its file size
            try:
                total += os.stat(path).st_size
            except OSError:
                continue
    return -(-total // MB)


def settings_resources(settings: VMSettings, old: VMSettings | None = None) -> Resources:
    """What ``settings`` take, or with ``old`` what they take beyond ``old`` (disks new
    in ``settings`` count whole)."""
    base = Resources() if old is None else settings_resources(old, None)
    added = _disk_paths(settings) - (_disk_paths(old) if old else set())
    return Resources(settings.memory.startup_mb - base.memory_mb,
                     settings.processor.count - base.processors, _capacity_mb(added))


def vm_resources(manager: ServiceCore) -> Callable[[str], Resources | None]:
    """VM id → what it takes (None: no such VM)."""
    def resources(vm_id: str) -> Resources | None:
        live = manager.vms().get(vm_id)
        return None if live is None else settings_resources(live.record.settings)
    return resources


class AccessHooks(Capability):
    """Quotas at VM creation and settings changes; closes :class:`AccessControl`."""

    name = "access"

    def __init__(self, access: AccessControl,
                 resources: Callable[[str], Resources | None]) -> None:
        self.access, self.resources = access, resources

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse a change past the requester's quota. A new VM is owned by its creator
        from here on (no await between the check and the ownership: two concurrent
        creates cannot both fit into the last free place; a VM that then fails to be
        made leaves an owner row that counts nothing)."""
        principal = CURRENT_PRINCIPAL.get()
        if principal is None or principal.bootstrap:
            return
        limits = self.access.quota(principal.user)
        limited = any(v is not None for v in limits.values())
        mine = change.old is None or self.access.owner_of(change.vm_id) == principal.user
        if limited and mine:  # a VM someone else owns: the grant allowed it, no quota of ours
            adding = settings_resources(change.new, change.old)
            used = usage_of(self.access.owned(principal.user), self.resources)
            check_quota(principal.user, limits, used, adding, 1 if change.old is None else 0)
        if change.old is None:
            self.access.set_owner(change.vm_id, principal.user)

    async def close(self) -> None:
        self.access.close()


class _Viewer:
    """What one principal may see of the console's event stream (console.events.Viewer)."""

    def __init__(self, access: AccessControl, principal: Principal) -> None:
        self._access, self._principal = access, principal
        self.sees_host = access.policy.allows(principal, "host.read", Target()) and \
            access.policy.sees_every_vm(principal)

    def visible(self, vm: dict[str, Any]) -> bool:
        target = self._access.target(str(vm.get("name")), str(vm.get("id")))
        return self._access.policy.allows(self._principal, "vm.read", target)


def console_viewer(access: AccessControl) -> Callable[[Mapping[str, Any]], _Viewer | None]:
    """ASGI scope → the viewer of the request's principal (None: the admin token)."""
    def viewer(scope: Mapping[str, Any]) -> _Viewer | None:
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        if not isinstance(principal, Principal) or principal.bootstrap:
            return None
        return _Viewer(access, principal)
    return viewer
