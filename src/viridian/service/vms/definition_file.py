"""Each VM's configuration file, ``<VM folder>/vm.json`` (docs/architecture.md, "VM
folders"): like Hyper-V's per-VM configuration file, a human-readable copy of the VM's
definition kept beside its disks, so that a folder whose VM was removed (files kept) can
be registered again (``viridian vm import --register-in-place FOLDER``).

The catalog stays the source of truth: the file is rewritten after every committed
settings change (and when the VM is removed with its files kept), atomically — a
temporary file in the same folder, fsync, rename, fsync of the folder — so a reader
sees the old or the new definition, never a mix.

Format, version 1 (``format_version`` decides how the rest is read; a reader refuses a
version it does not know)::

    {"format_version": 1, "id": "<uuid>", "name": "web1",
     "created_at": "2024-…Z", "settings": {…the API's settings object…}}
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viridian.errors import BadRequest, NotFound
from viridian.model import to_dict
from viridian.service.capability import Capability
from viridian.service.catalog import VMRecord
from viridian.service.vms.live import LiveVM

FILE_NAME = "vm.json"
FORMAT_VERSION = 1
KNOWN_VERSIONS = (1,)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Definition:
    """What a configuration file holds (the current format's fields); ``settings`` in
    the API's dict shape (docs/api.md, "Settings")."""

    id: str
    name: str
    created_at: str
    settings: dict[str, Any]

    @classmethod
    def of(cls, record: VMRecord) -> Definition:
        return cls(record.id, record.name, record.created_at, to_dict(record.settings))

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "id": self.id, "name": self.name,
                "created_at": self.created_at, "settings": self.settings}


def write_definition(folder: Path, definition: Definition) -> None:
    """Replace ``folder/vm.json`` atomically and durably (see the module docstring)."""
    target = folder / FILE_NAME
    tmp = folder / f".{FILE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(definition.to_dict(), file, indent=2, sort_keys=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, target)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_definition(folder: Path) -> Definition:
    """The definition in ``folder/vm.json``.

    :raises NotFound: ``folder`` or its ``vm.json`` does not exist.
    :raises BadRequest: the file is not JSON, lacks a field, or has a ``format_version``
        this viridian does not know (the allowed versions are named).
    """
    path = folder / FILE_NAME
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise NotFound(f"{folder} {what} (give the VM's folder, which holds {FILE_NAME}); "
                       "nothing was changed", path=str(folder))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise NotFound(f"{path} does not exist: {folder} holds no VM configuration file; "
                       "nothing was changed", path=str(path)) from err
    except (OSError, ValueError) as err:
        raise BadRequest(f"{path} is not a readable VM configuration file ({err}); "
                         "nothing was changed", path=str(path)) from err
    return _parsed(path, data)


def _parsed(path: Path, data: Any) -> Definition:
    version = data.get("format_version") if isinstance(data, dict) else None
    if version not in KNOWN_VERSIONS:
        raise BadRequest(
            f"{path}: unknown format_version {version!r}; this viridian reads "
            f"format_version {', '.join(map(str, KNOWN_VERSIONS))}; nothing was changed",
            path=str(path), format_version=repr(version))
    fields = {"id": str, "name": str, "created_at": str, "settings": dict}
    wrong = [key for key, kind in fields.items() if not isinstance(data.get(key), kind)]
    if wrong:
        raise BadRequest(f"{path}: missing or malformed {', '.join(wrong)} (format_version "
                         f"{version} needs id, name, created_at and settings); nothing was "
                         "changed", path=str(path))
    return Definition(data["id"], data["name"], data["created_at"], data["settings"])


class DefinitionFiles(Capability):
    """Keeps every VM's ``vm.json`` in step with the catalog."""

    name = "definition_files"

    def attach(self, vm: LiveVM) -> None:
        """A new VM gets its file; a VM found at start gets one if it has none."""
        if not (Path(vm.record.folder) / FILE_NAME).exists():
            self._write(vm)

    def settings_changed(self, vm: LiveVM) -> None:
        self._write(vm)

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        """The folder that stays holds the VM's last definition."""
        if not delete_files:
            self._write(vm)

    @staticmethod
    def _write(vm: LiveVM) -> None:
        """Write the file; a failure is logged, never raised (the catalog has committed)."""
        folder = Path(vm.record.folder)
        try:
            if folder.is_dir():
                write_definition(folder, Definition.of(vm.record))
        except OSError as err:
            log.warning("could not write %s of VM '%s': %s", folder / FILE_NAME,
                        vm.record.name, err)
