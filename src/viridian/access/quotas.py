"""Self-service quotas (SCVMM's self-service user quotas; docs/architecture.md, "Access"):
how many VMs, how much memory, how many virtual processors and how much disk space the
VMs a user owns may add up to. Pure: the service says what each VM uses
(:class:`Resources`), this module adds up and refuses with the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from viridian.errors import Forbidden

__all__ = ["KEYS", "Resources", "Usage", "check_quota", "usage_of"]

KEYS = ("vms", "memory_mb", "processors", "disk_mb")
_LABELS = {"vms": "VMs", "memory_mb": "memory (MB)", "processors": "virtual processors",
           "disk_mb": "disk (MB)"}


@dataclass(frozen=True)
class Resources:
    """What one VM (or one request) takes: startup memory, processors, disk capacity."""

    memory_mb: int = 0
    processors: int = 0
    disk_mb: int = 0


@dataclass(frozen=True)
class Usage:
    """The sum over a user's VMs."""

    vms: int = 0
    memory_mb: int = 0
    processors: int = 0
    disk_mb: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def usage_of(vm_ids: Iterable[str], resources: Callable[[str], Resources | None]) -> Usage:
    """Add up the VMs that still exist (``resources`` answers None for a removed one)."""
    found = [r for r in map(resources, vm_ids) if r is not None]
    return Usage(len(found), sum(r.memory_mb for r in found), sum(r.processors for r in found),
                 sum(r.disk_mb for r in found))


def check_quota(user: str, limits: Mapping[str, int | None], used: Usage, adding: Resources,
                new_vms: int = 0) -> None:
    """Return when ``used`` plus ``adding`` (and ``new_vms`` more VMs) stays within
    ``limits`` (None: no limit); else raise :class:`Forbidden` naming, for each limit
    passed, what is used, what was requested and the limit."""
    wanted = {"vms": new_vms, "memory_mb": adding.memory_mb, "processors": adding.processors,
              "disk_mb": adding.disk_mb}
    over = []
    for key in KEYS:
        limit, now, more = limits.get(key), getattr(used, key), wanted[key]
        if limit is not None and more > 0 and now + more > limit:
            over.append((key, now, more, limit))
    if over:
        text = "; ".join(f"{_LABELS[k]}: {now} used + {more} requested > limit {limit}"
                         for k, now, more, limit in over)
        raise Forbidden(f"{user}'s quota would be exceeded — {text}; nothing was changed "
                        "(see 'viridian quota show')", user=user,
                        quota={k: {"used": now, "requested": more, "limit": limit}
                               for k, now, more, limit in over})
