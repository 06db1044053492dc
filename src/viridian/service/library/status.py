"""What each provisioned VM's guest reported ("provisioning", "provisioned: ready"), kept
in its folder ``<data>/provisioned/<uuid>/status`` beside ``vm-id``: a service restart
keeps it (and the library capability watches still-provisioning guests again when it
adopts them)."""

from __future__ import annotations

import os
from pathlib import Path

STATUS_FILE = "status"
ID_FILE = "vm-id"


class ProvisionStatus:
    """vm id → status, read from and written through to the provisioned folders."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._status: dict[str, str] = {}
        self._folders: dict[str, Path] = {}
        for marker in root.glob(f"*/{ID_FILE}"):
            vm_id = marker.read_text().strip()
            self._folders[vm_id] = marker.parent
            status = marker.parent / STATUS_FILE
            if status.is_file():
                self._status[vm_id] = status.read_text().strip()

    def get(self, vm_id: str) -> str | None:
        return self._status.get(vm_id)

    def folder(self, vm_id: str) -> Path | None:
        return self._folders.get(vm_id)

    def set(self, vm_id: str, status: str, folder: Path | None = None) -> None:
        """Record ``status`` (atomically: a crash leaves the old or the new one)."""
        folder = folder or self._folders.get(vm_id)
        self._status[vm_id] = status
        if folder is None:
            return
        self._folders[vm_id] = folder
        staged = folder / f".{STATUS_FILE}.new"
        staged.write_text(status + "\n")
        os.replace(staged, folder / STATUS_FILE)

    def forget(self, vm_id: str) -> None:
        self._status.pop(vm_id, None)
        self._folders.pop(vm_id, None)
