"""What the defined VMs use on the host that must stay unique: disk files and MAC addresses.

The catalog keeps one :class:`UsageIndex` in step with its VM rows (docs/architecture.md,
"Scale"), so checking a new or changed VM against every other VM costs the same with
ten VMs or ten thousand: a dictionary lookup per disk and per MAC, never a pass over the
catalog.

Rules it serves (checked in :mod:`viridian.service.vms.config` and
:mod:`viridian.service.vms.macs`):

- a disk file is attached to one VM only. Two paths are the same disk when they resolve
  to the same file (``os.path.realpath``) or are hard links to the same inode (same
  ``st_dev`` and ``st_ino``). Read-only media (``.iso``, ``.vfd``) of *other* VMs may be
  shared, so they are not indexed;
- a MAC address is used by one network adapter on the host.

Paths are resolved when a VM is indexed (defined, changed, or read back at start). Hard
links are compared only when the file being checked has more than one link
(``st_nlink > 1``), which is rare: then every indexed disk is compared by inode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from viridian.model import VMSettings
from viridian.model.slots import drive_slots

READ_ONLY_MEDIA = (".iso", ".vfd")


@dataclass(frozen=True, slots=True)
class DiskUse:
    """A disk file a VM holds: the VM and the path as its settings name it."""

    vm_id: str
    vm_name: str
    path: str


@dataclass(frozen=True, slots=True)
class MacUse:
    """A MAC address a VM's adapter holds (``adapter`` counts from 1)."""

    vm_id: str
    vm_name: str
    adapter: int

    def holder(self) -> str:
        """How a refusal names the holder: ``VM 'name' (network adapter N)``."""
        return f"VM '{self.vm_name}' (network adapter {self.adapter})"


Uses = tuple[list[str], list[tuple[int, str]]]
"""A VM's image paths, and its MACs with the number of their adapter (from 1)."""


def uses_of(settings: VMSettings) -> Uses:
    """The image paths (drives, then the floppy) and the MACs that ``settings`` name."""
    paths = [slot.path for slot in drive_slots(settings) if slot.path]
    if settings.floppy.path:
        paths.append(settings.floppy.path)
    return paths, [(number, adapter.mac) for number, adapter
                   in enumerate(settings.network_adapters, start=1) if adapter.mac]


def is_read_only_media(path: str) -> bool:
    """``.iso`` and ``.vfd`` files may be attached to several VMs."""
    return path.lower().endswith(READ_ONLY_MEDIA)


class UsageIndex:
    """Disk files (by resolved path) and MACs of every indexed VM; see the module docstring.

    Not thread-safe: the service calls it from its event loop only, like the catalog.
    """

    __slots__ = ("_by_vm", "_disks", "_macs")

    def __init__(self) -> None:
        self._disks: dict[str, DiskUse] = {}
        self._macs: dict[str, MacUse] = {}
        self._by_vm: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def put(self, vm_id: str, vm_name: str, uses: Uses) -> None:
        """Index (or re-index) the VM ``vm_id`` with its ``uses`` (see :func:`uses_of`)."""
        self.drop(vm_id)
        paths, macs = uses
        disks: list[str] = []
        for path in paths:
            if not is_read_only_media(path):
                real = os.path.realpath(path)
                self._disks[real] = DiskUse(vm_id, vm_name, path)
                disks.append(real)
        for number, mac in macs:
            self._macs[mac] = MacUse(vm_id, vm_name, number)
        if disks or macs:  # nothing kept for a VM without disks or MACs
            self._by_vm[vm_id] = (tuple(disks), tuple(mac for _, mac in macs))

    def drop(self, vm_id: str) -> None:
        """Forget what the VM ``vm_id`` used (no error when it was not indexed)."""
        disks, macs = self._by_vm.pop(vm_id, ((), ()))
        for real in disks:
            if self._disks.get(real, _NOBODY_DISK).vm_id == vm_id:
                del self._disks[real]
        for mac in macs:
            if self._macs.get(mac, _NOBODY_MAC).vm_id == vm_id:
                del self._macs[mac]

    def disk_holder(self, path: str, except_vm: str | None) -> DiskUse | None:
        """The other VM that holds the file at ``path`` (same resolved path, or a hard link
        to the same inode), else None."""
        use = self._disks.get(os.path.realpath(path))
        if use is not None and use.vm_id != except_vm:
            return use
        return self._hard_link_holder(path, except_vm)

    def _hard_link_holder(self, path: str, except_vm: str | None) -> DiskUse | None:
        try:
            mine = os.stat(path)
        except OSError:
            return None
        if mine.st_nlink < 2:
            return None
        for use in self._disks.values():
            if use.vm_id == except_vm:
                continue
            try:
                theirs = os.stat(use.path)
            except OSError:
                continue
            if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
                return use
        return None

    def macs_except(self, vm_id: str | None) -> Mapping[str, str]:
        """MAC → holder text for every adapter of every VM but ``vm_id`` (a live view)."""
        return _MacsOfOthers(self._macs, vm_id)


_NOBODY_DISK = DiskUse("", "", "")
_NOBODY_MAC = MacUse("", "", 0)


class _MacsOfOthers(Mapping[str, str]):
    """Read-only view of the MAC index without one VM's adapters (no copy)."""

    def __init__(self, macs: dict[str, MacUse], except_vm: str | None) -> None:
        self._macs = macs
        self._except = except_vm

    def __getitem__(self, mac: str) -> str:
        use = self._macs[mac]
        if use.vm_id == self._except:
            raise KeyError(mac)
        return use.holder()

    def __iter__(self) -> Iterator[str]:
        return (mac for mac, use in self._macs.items() if use.vm_id != self._except)

    def __len__(self) -> int:
        return sum(1 for _ in self)
