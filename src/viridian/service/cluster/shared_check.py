"""An HA VM's files must be on storage every host sees (docs/architecture.md, "Failover
cluster: sites and shared storage"): with HA on, the VM's folder and each hard disk
image must be inside one of the cluster's shared folders (``cluster create --shared``),
else the change is refused (400) naming the path. A cluster that names no shared folder
does not check (``cluster validate`` warns about it). DVD and floppy media are not
checked: a VM restarted on a host without them fails its start there, visibly.
"""

from __future__ import annotations

from viridian.errors import InvalidSetting
from viridian.model import VMSettings
from viridian.model.slots import hard_disks
from viridian.service.cluster.config import ClusterConfig

__all__ = ["check_on_shared_storage"]


def check_on_shared_storage(config: ClusterConfig, vm_name: str, folder: str | None,
                            settings: VMSettings) -> None:
    """Raise :class:`InvalidSetting` (400) naming the first path outside the shared
    folders when ``settings`` turn HA on."""
    if not settings.high_availability.ha or not config.shared:
        return
    paths = ([("folder", folder)] if folder else []) + [
        (f"{slot.bus} {slot.controller}:{slot.location} disk", slot.path)
        for slot in hard_disks(settings) if slot.path]
    allowed = "paths inside the cluster's shared folders: " + ", ".join(config.shared)
    for what, path in paths:
        if not config.under_shared(path):
            raise InvalidSetting(
                "high_availability.ha", True, allowed,
                f"VM '{vm_name}' cannot be highly available: its {what} {path} is not on "
                "the cluster's shared storage, so other hosts could not start it; move it "
                "there first (vm move-storage); nothing was changed")
