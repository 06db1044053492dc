"""Disks the wizard makes or grows count against the requesting user's disk quota
(docs/architecture.md, "Access"; issue 17's self-service quotas).

A user with a ``disk`` limit (``viridian quota set USER --disk SIZE``) who makes a disk
with ``POST /disks/new``, ``/disks/convert`` or ``/disks/merge`` (into a new output), or
grows one with ``/disks/expand``, is refused (403, nothing made) when the capacity it adds
would pass the limit; the used figure is the capacity of the disks of the VMs the user
owns plus every disk the wizard made for the user (each file once, by real path). The
disks the wizard made for a user are recorded in ``<data>/wizard_disks.json`` (0600)
when the request is accepted (before its job runs); a record whose file does not exist
counts nothing and is dropped a day later.

The requester comes from :data:`viridian.service.auth.CURRENT_PRINCIPAL`; the admin
token and work without a request count against nobody.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from viridian import disks
from viridian.access.quotas import Resources, Usage, check_quota
from viridian.model.slots import hard_disks
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.context import ServiceContext

if TYPE_CHECKING:
    from viridian.access import AccessControl

__all__ = ["RECORD_NAME", "WizardQuota", "capacity_of"]

RECORD_NAME = "wizard_disks.json"
MB = 1024 * 1024
KEEP_MISSING_S = 86_400


def capacity_of(path: Path | str) -> int:
    """Virtual size of a disk (its header; a VMDK's or qcow2's by qemu-img), else the
    file's size, else 0 (bytes)."""
    from viridian.disks.foreign_convert import foreign_virtual_size

    foreign = foreign_virtual_size(Path(path))
    if foreign is not None:
        return foreign
    try:
        return disks.inspect(path).virtual_size
    except (disks.DiskError, OSError, ValueError):
        try:
            return os.stat(path).st_size
        except OSError:
            return 0


class WizardQuota:
    """Charges the disks the wizard makes to the requesting user's disk quota."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.path = context.data_dir / RECORD_NAME

    def charge(self, access: AccessControl | None, target: Path, adding: int) -> None:
        """The request being served makes (or grows) ``target`` by ``adding`` bytes:
        refuse it past the requester's disk quota, else record ``target`` as theirs.

        :raises Forbidden: used + requested > limit, with the numbers (nothing made).
        """
        principal = CURRENT_PRINCIPAL.get()
        if access is None or principal is None or principal.bootstrap:
            return
        limits = access.quota(principal.user)
        if limits.get("disk_mb") is not None and adding > 0:
            used = Usage(disk_mb=self.used_mb(access, principal.user, exclude=target))
            check_quota(principal.user, limits, used, Resources(disk_mb=-(-adding // MB)))
        self._record(principal.user, target)

    def used_mb(self, access: AccessControl, user: str, exclude: Path | None = None) -> int:
        """Disk capacity ``user`` holds: owned VMs' disks and the wizard's disks for them
        (``exclude``: the file being made or grown, counted by the request itself)."""
        files = self._owned_vm_disks(access.owned(user)) | self.made_for(user)
        if exclude is not None:
            files.discard(os.path.realpath(exclude))
        return -(-sum(capacity_of(f) for f in files) // MB)

    def made_for(self, user: str) -> set[str]:
        """Real paths of the existing disks the wizard made for ``user``."""
        return {path for path, (owner, _) in self._read().items()
                if owner == user and os.path.exists(path)}

    def _owned_vm_disks(self, vm_ids: Iterable[str]) -> set[str]:
        vms, found = self.context.vms(), set()
        for vm_id in vm_ids:
            live = vms.get(vm_id)
            if live is None:
                continue
            found |= {slot.path for slot in hard_disks(live.record.settings) if slot.path}
        return {os.path.realpath(p) for p in found}

    def _read(self) -> dict[str, tuple[str, float]]:
        """Real path → (user, when recorded)."""
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(found, dict):
            return {}
        return {str(k): (str(v["user"]), float(v["at"])) for k, v in found.items()
                if isinstance(v, dict) and "user" in v and "at" in v}

    def _record(self, user: str, target: Path) -> None:
        now = time.time()
        record = {p: {"user": u, "at": at} for p, (u, at) in self._read().items()
                  if os.path.exists(p) or now - at < KEEP_MISSING_S}
        record[os.path.realpath(target)] = {"user": user, "at": now}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(record, file)
        os.replace(tmp, self.path)
