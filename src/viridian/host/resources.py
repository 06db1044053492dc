"""Reading the host's resources: memory, logical processors, boot id (the only I/O here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class HostResources:
    memory_mb: int
    memory_available_mb: int
    logical_processors: int


def _meminfo_kib(field: str, text: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"/proc/meminfo has no {field} line")


def read_resources() -> HostResources:
    """Total and available memory (MB, from /proc/meminfo) and usable logical processors."""
    text = Path("/proc/meminfo").read_text()
    return HostResources(
        memory_mb=_meminfo_kib("MemTotal", text) // 1024,
        memory_available_mb=_meminfo_kib("MemAvailable", text) // 1024,
        logical_processors=len(os.sched_getaffinity(0)),
    )


def read_boot_id() -> str:
    """The kernel's boot id; ``$VIRIDIAN_BOOT_ID_FILE`` overrides the source (for tests)."""
    source = Path(os.environ.get("VIRIDIAN_BOOT_ID_FILE", str(BOOT_ID_FILE)))
    return source.read_text().strip()
