"""Where a running VM's worker keeps its files (the VM's runtime folder).

The runtime folder of a running VM holds everything needed to find and reconnect to its
QEMU process after the service restarts. It lives under ``<data>/run/<vm-id>/`` and is
removed when the QEMU process ends. Unix socket paths must stay under 108 bytes.

The VM's storage daemon keeps its files beside it, in ``<data>/run/<vm-id>-storage/``
(:attr:`RuntimePaths.storage_folder`): the daemon lives as long as the VM is registered,
across QEMU's ends and starts (docs/architecture.md, "The storage daemon").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STORAGE_FOLDER_SUFFIX = "-storage"
"""``<vm-id>-storage``: the storage daemon's folder beside the VM's runtime folder."""


@dataclass(frozen=True)
class RuntimePaths:
    """The fixed file names inside one VM's runtime folder."""

    folder: Path

    @property
    def qmp_socket(self) -> Path:
        return self.folder / "qmp.sock"

    @property
    def guest_agent_socket(self) -> Path:
        return self.folder / "qga.sock"

    @property
    def pid_file(self) -> Path:
        return self.folder / "qemu.pid"

    @property
    def record_file(self) -> Path:
        """The versioned runtime record (JSON): what exactly was launched."""
        return self.folder / "runtime.json"

    @property
    def qemu_log(self) -> Path:
        """QEMU's own stderr."""
        return self.folder / "qemu.log"

    @property
    def vnc_socket(self) -> Path:
        """The VM's screen (VNC on a UNIX socket, never a TCP port)."""
        return self.folder / "vnc.sock"

    @property
    def storage_folder(self) -> Path:
        """The storage daemon's own folder, beside QEMU's: it outlives QEMU."""
        return self.folder.with_name(self.folder.name + STORAGE_FOLDER_SUFFIX)

    @property
    def storage_qmp_socket(self) -> Path:
        """The storage daemon's QMP (docs/architecture.md, "The storage path")."""
        return self.storage_folder / "qmp.sock"

    @property
    def nbd_socket(self) -> Path:
        """The storage daemon's NBD server: one export per disk, named by its device id."""
        return self.storage_folder / "nbd.sock"

    @property
    def storage_pid_file(self) -> Path:
        """The storage daemon's pid file (how a leftover daemon is found and ended)."""
        return self.storage_folder / "storage.pid"

    @property
    def storage_log(self) -> Path:
        """The storage daemon's own stderr."""
        return self.storage_folder / "storage.log"

    @property
    def storage_record_file(self) -> Path:
        """The daemon's record (pid, start time, boot id, argv): how a restarted service
        finds it again."""
        return self.storage_folder / "storage.json"

    def com_log(self, port: int) -> Path:
        """Everything the guest wrote to COM``port`` (1 or 2), always captured."""
        return self.folder / f"com{port}.log"

    def com_socket(self, port: int) -> Path:
        """Default named-pipe socket for COM``port`` when the admin names no path."""
        return self.folder / f"com{port}.sock"
