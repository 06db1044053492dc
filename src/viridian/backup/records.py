"""A backup point as recorded (docs/api.md, "Backup").

A point is *good* only once every file of it is written, synced and checksummed; until
then it is *partial* and never offered for restore, verify or as the parent of an
incremental point. ``kind`` says how its data was read: ``full`` (every block) or
``incremental`` (only the blocks the parent's dirty bitmap marks changed, in qcow2
images whose backing files are the parent's). ``reason`` says why a point asked to be
incremental is full (the bitmap was lost: the storage daemon or QEMU restarted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from viridian.errors import BadRequest

Kind = Literal["full", "incremental"]
Consistency = Literal["application", "crash"]
Status = Literal["partial", "good"]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BackupDisk:
    """One hard disk of the VM in a point: its slot (``ide:0:0``), the file in the point's
    folder (relative), the format the VM's disk had, and its size in bytes."""

    slot: str
    file: str
    source_format: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "file": self.file, "source_format": self.source_format,
                "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupDisk:
        return cls(str(data["slot"]), str(data["file"]), str(data["source_format"]),
                   int(data["size"]))


@dataclass(frozen=True)
class BackupRecord:
    """One backup point (see the module docstring). ``folder`` is absolute."""

    id: str
    vm_id: str
    vm_name: str
    created_at: str
    kind: Kind
    parent: str | None
    consistency: Consistency
    vm_state: str
    reason: str
    folder: str
    disks: tuple[BackupDisk, ...]
    status: Status = "partial"
    completed_at: str | None = None
    bytes_written: int = 0
    memory: str | None = None
    """The point-relative file of the VM's memory and device state at the point in time
    (``backup new --with-memory``; a QEMU saved state), or None."""

    @property
    def good(self) -> bool:
        return self.status == "good"

    def completed(self, when: str, written: int) -> BackupRecord:
        return replace(self, status="good", completed_at=when, bytes_written=written)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "id": self.id, "vm_id": self.vm_id,
                "vm_name": self.vm_name, "created_at": self.created_at, "kind": self.kind,
                "parent": self.parent, "consistency": self.consistency,
                "vm_state": self.vm_state, "reason": self.reason, "folder": self.folder,
                "disks": [d.to_dict() for d in self.disks], "status": self.status,
                "completed_at": self.completed_at, "bytes_written": self.bytes_written,
                "memory": self.memory}

    @classmethod
    def from_dict(cls, data: Any, where: str = "backup record") -> BackupRecord:
        """The record in ``data``.

        :raises BadRequest: not a record of a known format_version, or a field missing.
        """
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise BadRequest(f"{where}: not a backup record of format_version "
                             f"{FORMAT_VERSION}; nothing was changed", path=where)
        try:
            return cls(str(data["id"]), str(data["vm_id"]), str(data["vm_name"]),
                       str(data["created_at"]), data["kind"], data.get("parent"),
                       data["consistency"], str(data["vm_state"]), str(data["reason"]),
                       str(data["folder"]),
                       tuple(BackupDisk.from_dict(d) for d in data["disks"]),
                       data["status"], data.get("completed_at"),
                       int(data.get("bytes_written", 0)),
                       str(data["memory"]) if data.get("memory") else None)
        except (KeyError, TypeError, ValueError) as err:
            raise BadRequest(f"{where}: malformed backup record ({err}); nothing was "
                             "changed", path=where) from err
