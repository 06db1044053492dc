"""What the host's QEMU can do, as probed once at service start (see ``probe``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Accelerator = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class HostCapabilities:
    """Input to the pure argv renderer alongside a VM's settings."""

    qemu_binary: str = "/usr/bin/qemu-system-x86_64"
    qemu_version: tuple[int, int, int] = (7, 2, 0)
    accelerator: Accelerator = "tcg"
    machine: str = "pc-i440fx-7.2"
    storage_daemon: str | None = None
    """The ``qemu-storage-daemon`` binary that serves the disks of VMs with VHD/VHDX disks
    over NBD, or None: QEMU opens every image itself (host setting ``storage_daemon``;
    docs/architecture.md, "The storage path")."""
