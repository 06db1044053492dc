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
