"""A new VHD made together with a new VM (the New Virtual Machine wizard's "Create a
virtual hard disk"; docs/api.md, "VMs": ``POST /vms`` with ``new_vhd``).

The order that makes a refused request change nothing: :func:`plan_new_vhd` checks the
request without touching the disk (absolute path, nothing there yet, a size in range);
the VM's settings are validated without the disk; only then :meth:`PlannedVHD.create`
writes the file (and any missing folders), and :meth:`PlannedVHD.discard` removes exactly
what it made when the VM's creation fails after that.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from viridian import disks
from viridian.disks.sizes import check_virtual_size
from viridian.errors import BadRequest, Conflict, HostError, InvalidSetting
from viridian.service.http_boundary import RequestBody

ALLOWED_PATH = "an absolute path of a .vhd file that does not exist yet"
ALLOWED_SIZE = "512 bytes .. 2040 GiB, e.g. 512M, 20G or a number of bytes"


class NewVHD(RequestBody):
    """``new_vhd`` of ``POST /vms``: the disk to create at IDE 0:0."""

    path: str
    size: str | int
    type: Literal["dynamic", "fixed"] = "dynamic"


@dataclass
class PlannedVHD:
    """A checked ``new_vhd``; :meth:`create` makes it, :meth:`discard` undoes that."""

    path: Path
    size: int
    type: str
    made_folders: list[Path] = field(default_factory=list)
    made_file: bool = False

    async def create(self) -> None:
        """Make missing folders, then the VHD (in a thread).

        :raises ViridianError: the disk library refused (space, size) or the host failed;
            whatever was made is removed again.
        """
        try:
            self._make_folders()
            await asyncio.to_thread(self._write)
        except (disks.DiskError, OSError) as err:
            self.discard()
            raise _translated(err, self.path) from err

    def _make_folders(self) -> None:
        missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700)
            self.made_folders.append(folder)

    def _write(self) -> None:
        self.made_file = True  # from here on the file may exist, even half written
        if self.type == "fixed":
            disks.new_fixed(self.path, self.size)
        else:
            disks.new_dynamic(self.path, self.size)

    def discard(self) -> None:
        """Remove the file and the folders that :meth:`create` made (never anything else)."""
        if self.made_file:
            self.path.unlink(missing_ok=True)
        for folder in reversed(self.made_folders):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.made_folders.clear()
        self.made_file = False


def plan_new_vhd(spec: NewVHD) -> PlannedVHD:
    """Check ``spec`` without writing anything.

    :raises InvalidSetting: the path is not absolute or not a .vhd name, or the size is
        outside the allowed range.
    :raises Conflict: something already exists at the path.
    """
    path = Path(spec.path)
    if not path.is_absolute() or "\0" in spec.path or path.suffix.lower() != ".vhd":
        raise InvalidSetting("new_vhd.path", spec.path, ALLOWED_PATH)
    if path.exists() or path.is_symlink():
        what = "a folder" if path.is_dir() else "a file"
        raise Conflict(f"new_vhd.path: {path} already exists ({what}); choose another path, "
                       "or attach an existing disk with 'vhd'; nothing was changed",
                       setting="new_vhd.path", path=spec.path)
    return PlannedVHD(path, _size(spec.size), spec.type)


def _size(value: str | int) -> int:
    try:
        size = value if isinstance(value, int) else disks.parse_size(str(value))
        return check_virtual_size(size)
    except disks.InvalidDiskArgument as err:
        raise InvalidSetting("new_vhd.size", value, ALLOWED_SIZE, reason=str(err)) from err


def _translated(err: Exception, path: Path) -> Exception:
    if isinstance(err, disks.DiskError) and err.http_status == 400:
        return BadRequest(f"new_vhd: {err}; nothing was changed", path=str(path))
    if isinstance(err, disks.DiskError) and err.http_status == 409:
        return Conflict(f"new_vhd: {err}; nothing was changed", path=str(path))
    return HostError(f"new_vhd: creating {path} failed: {err}; nothing was changed",
                     path=str(path))
