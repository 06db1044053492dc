"""viridian.disks — spec-exact VHD and VHDX (fixed, dynamic, differencing) and raw images.

Imports nothing from the rest of viridian. Public API:

* opening: :func:`open_disk` → :class:`DiskImage` (read/write at any byte offset)
* sniffing: :func:`detect_format` → QEMU driver name ("vpc", "vhdx", "qcow2", "raw")
* creating: :func:`new_fixed`, :func:`new_dynamic`, :func:`new_differencing` (a *.vhdx
  child of a VHDX parent is a differencing VHDX), :func:`new_vhdx_fixed`,
  :func:`new_vhdx_dynamic`; ``convert`` writes VHDX when the destination is *.vhdx
* VHDX log: :func:`replay_vhdx_log` (before a VHDX is handed to QEMU)
* operations: :func:`inspect`, :func:`convert`, :func:`compact`, :func:`expand`,
  :func:`merge`, :func:`check`
* errors: :class:`DiskError` and its subclasses, each carrying ``http_status``,
  ``exit_code`` and ``code`` of the error table (see :mod:`.errors`)
"""

from __future__ import annotations

import importlib
import sys
import types

# typing.TYPE_CHECKING without importing typing (~3 ms of every ``viridian disk`` start;
# docs/architecture.md, "CLI latency"); type checkers read the name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .check import CheckReport, Problem, check
    from .compact import CompactResult, compact
    from .convert import TARGET_TYPES, convert
    from .create import new_differencing, new_dynamic, new_fixed
    from .detect import detect_format
    from .errors import (
        BadBlockTable,
        BadDynamicHeader,
        BadFooter,
        CorruptDisk,
        DiskError,
        DiskExists,
        DiskInUse,
        DiskNotFound,
        InvalidDiskArgument,
        NoSpace,
        ParentLinkError,
        UnsupportedDisk,
    )
    from .expand import expand
    from .image import DiskImage
    from .inspect import DiskInfo, inspect
    from .merge import merge
    from .progress import Progress
    from .sizes import parse_size
    from .vhd_layout import DEFAULT_BLOCK_SIZE, MAX_VIRTUAL_SIZE
    from .vhdx import replay_pending_log as replay_vhdx_log
    from .vhdx_create import new_vhdx_differencing, new_vhdx_dynamic, new_vhdx_fixed
    from .vhdx_layout import BadLog, BadMetadata, BadRegionTable, BadVhdxHeader
    from .vhdx_open import open_disk

_LAZY = {  # public name: (module, attribute), imported on first use
    "BadBlockTable": ("errors", "BadBlockTable"),
    "BadDynamicHeader": ("errors", "BadDynamicHeader"),
    "BadFooter": ("errors", "BadFooter"),
    "BadLog": ("vhdx_layout", "BadLog"),
    "BadMetadata": ("vhdx_layout", "BadMetadata"),
    "BadRegionTable": ("vhdx_layout", "BadRegionTable"),
    "BadVhdxHeader": ("vhdx_layout", "BadVhdxHeader"),
    "CheckReport": ("check", "CheckReport"),
    "CompactResult": ("compact", "CompactResult"),
    "CorruptDisk": ("errors", "CorruptDisk"),
    "DEFAULT_BLOCK_SIZE": ("vhd_layout", "DEFAULT_BLOCK_SIZE"),
    "DiskError": ("errors", "DiskError"),
    "DiskExists": ("errors", "DiskExists"),
    "DiskImage": ("image", "DiskImage"),
    "DiskInUse": ("errors", "DiskInUse"),
    "DiskInfo": ("inspect", "DiskInfo"),
    "DiskNotFound": ("errors", "DiskNotFound"),
    "InvalidDiskArgument": ("errors", "InvalidDiskArgument"),
    "MAX_VIRTUAL_SIZE": ("vhd_layout", "MAX_VIRTUAL_SIZE"),
    "NoSpace": ("errors", "NoSpace"),
    "ParentLinkError": ("errors", "ParentLinkError"),
    "Problem": ("check", "Problem"),
    "Progress": ("progress", "Progress"),
    "TARGET_TYPES": ("convert", "TARGET_TYPES"),
    "UnsupportedDisk": ("errors", "UnsupportedDisk"),
    "check": ("check", "check"),
    "compact": ("compact", "compact"),
    "convert": ("convert", "convert"),
    "detect_format": ("detect", "detect_format"),
    "expand": ("expand", "expand"),
    "inspect": ("inspect", "inspect"),
    "merge": ("merge", "merge"),
    "new_differencing": ("create", "new_differencing"),
    "new_dynamic": ("create", "new_dynamic"),
    "new_fixed": ("create", "new_fixed"),
    "new_vhdx_differencing": ("vhdx_create", "new_vhdx_differencing"),
    "new_vhdx_dynamic": ("vhdx_create", "new_vhdx_dynamic"),
    "new_vhdx_fixed": ("vhdx_create", "new_vhdx_fixed"),
    "open_disk": ("vhdx_open", "open_disk"),
    "parse_size": ("sizes", "parse_size"),
    "replay_vhdx_log": ("vhdx", "replay_pending_log"),
}

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "MAX_VIRTUAL_SIZE",
    "TARGET_TYPES",
    "BadBlockTable",
    "BadDynamicHeader",
    "BadFooter",
    "BadLog",
    "BadMetadata",
    "BadRegionTable",
    "BadVhdxHeader",
    "CheckReport",
    "CompactResult",
    "CorruptDisk",
    "DiskError",
    "DiskExists",
    "DiskImage",
    "DiskInUse",
    "DiskInfo",
    "DiskNotFound",
    "InvalidDiskArgument",
    "NoSpace",
    "ParentLinkError",
    "Problem",
    "Progress",
    "UnsupportedDisk",
    "check",
    "compact",
    "convert",
    "detect_format",
    "expand",
    "inspect",
    "merge",
    "new_differencing",
    "new_dynamic",
    "new_fixed",
    "new_vhdx_differencing",
    "new_vhdx_dynamic",
    "new_vhdx_fixed",
    "open_disk",
    "parse_size",
    "replay_vhdx_log",
]


class _Package(types.ModuleType):
    """This package, whose public names are imported on first use (PEP 562).

    Why: ``viridian disk convert`` should load the convert path only, not check,
    inspect, merge… (docs/architecture.md, "CLI latency"). Several functions share their
    module's name (``convert`` in ``convert``); importing such a module later would
    rebind the package attribute to the module, so a module never replaces a public
    name here — ``viridian.disks.convert`` stays the function, as with eager imports.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            module, attribute = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # the import system binding a submodule: keep the public name
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
