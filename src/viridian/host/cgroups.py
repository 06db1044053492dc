"""Each running VM's QEMU in a cgroup of its own: ``<base>/viridian/<vm-id>``.

Which cgroup file system holds a controller is probed per controller (``cpu``,
``memory``) from ``/proc/self/mountinfo`` and ``/proc/self/cgroup``: cgroup v2 when the
unified hierarchy offers the controller, else a v1 hierarchy that mounts it (hosts like
Debian 12 in some containers mount only v1 controllers, with v2 empty). A controller
found nowhere is left out and :attr:`CgroupHost.missing` says so.

``<base>`` is the service's own cgroup in that hierarchy (a well-behaved delegate creates
its groups below its own, e.g. below ``viridian.service`` under systemd), so the VMs'
groups of a restarted service are found again at the same place. On v2 a cgroup with
processes cannot hand controllers to children; when enabling them fails with EBUSY the
service first moves itself into the leaf ``<base>/viridian-service`` (systemd's advice
for delegated units) — a later probe strips that leaf from its own path.

Files written (v1 | v2):

* CPU limit: ``cpu.cfs_period_us`` + ``cpu.cfs_quota_us`` (-1 = none) | ``cpu.max``
* weight: ``cpu.shares`` | ``cpu.weight``
* memory bound: ``memory.limit_in_bytes`` | ``memory.max``

Moving QEMU writes its pid to ``cgroup.procs``, which moves all its threads; threads it
creates later start in the same group. On v1 ``memory.move_charge_at_immigrate`` is set
first (where the kernel still has it) so memory QEMU already touched moves along.

The ``viridian`` group itself weighs as much as its VMs' virtual processors would as plain
processes (:meth:`CgroupHost.weigh_parent`): grouping VMs changes how they share CPU among
themselves, not how much they get against the host's other processes. The service itself
runs in ``<base>/viridian-service`` with the same weight (:meth:`CgroupHost.shelter_service`):
however many guests are busy, the management plane gets up to half the CPU when it asks.

The memory bound (:func:`memory_limit_bytes`): the VM's memory plus an allowance for
QEMU itself — 256 MiB for its own code, heap and device buffers, 1/8 of the VM's memory
for page tables and dirty-page bookkeeping, and under TCG 1 GiB for the translated-code
cache (QEMU 7.2's default ``tb-size`` on 64-bit hosts; it is reused, never grown, when
full). Exceeding the bound makes the kernel reclaim QEMU's page cache first and, only
then, kill QEMU — the allowance is generous so that only a runaway QEMU ever reaches it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from viridian.errors import HostError
from viridian.host.cpu_policy import CpuControl

__all__ = [
    "GROUP_PARENT",
    "CgroupHost",
    "ControllerMount",
    "GroupState",
    "memory_limit_bytes",
    "probe_cgroups",
]

Version = Literal["v1", "v2"]
Controller = Literal["cpu", "memory"]
CONTROLLERS: tuple[Controller, ...] = ("cpu", "memory")
GROUP_PARENT = "viridian"
SERVICE_LEAF = "viridian-service"
MIB = 1024 * 1024
QEMU_OVERHEAD_MIB = 256
TCG_CODE_CACHE_MIB = 1024


def memory_limit_bytes(memory_mb: int, accelerator: str) -> int:
    """The memory bound of a VM's cgroup (see the module docs for the allowance)."""
    allowance = QEMU_OVERHEAD_MIB + memory_mb // 8
    if accelerator == "tcg":
        allowance += TCG_CODE_CACHE_MIB
    return (memory_mb + allowance) * MIB


@dataclass(frozen=True)
class ControllerMount:
    """Where one controller's VM groups live: ``parent / <vm-id>``."""

    controller: Controller
    version: Version
    parent: Path  # <mount>/<service's own cgroup>/viridian

    def group(self, vm_id: str) -> Path:
        return self.parent / vm_id


@dataclass(frozen=True)
class GroupState:
    """The values in force in a VM's cgroups, read back from the files."""

    paths: dict[str, str]
    quota_us: int | None
    period_us: int | None
    shares_v1: int | None
    weight_v2: int | None
    memory_limit_bytes: int | None
    pids: list[int] = field(default_factory=list)


# --- probing -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mount:
    version: Version
    root: str  # the cgroup path the mount shows at its mount point
    point: Path
    controllers: frozenset[str]


def _mounts(mountinfo: str) -> list[_Mount]:
    """cgroup mounts from /proc/self/mountinfo (proc(5): fields, then ' - ', fstype, src, opts)."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2":
            found.append(_Mount("v2", fields[3], point, _v2_controllers(point)))
        else:
            found.append(_Mount("v1", fields[3], point, frozenset(tail[2].split(","))))
    return found


def _v2_controllers(point: Path) -> frozenset[str]:
    try:
        return frozenset((point / "cgroup.controllers").read_text().split())
    except OSError:
        return frozenset()


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """Controller (or ``""`` for v2) → the process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path.removesuffix("/" + SERVICE_LEAF)
    return paths


def _under(mount: _Mount, own: str) -> Path:
    relative = os.path.relpath(own, mount.root) if own.startswith(mount.root) else "."
    return (mount.point / relative).resolve() / GROUP_PARENT


def resolve_mounts(mountinfo: str, proc_cgroup: str) -> dict[str, ControllerMount]:
    """Pure: the mount each controller's VM groups go under (v2 preferred)."""
    mounts, own = _mounts(mountinfo), _own_paths(proc_cgroup)
    chosen: dict[str, ControllerMount] = {}
    for controller in CONTROLLERS:
        v2 = [m for m in mounts if m.version == "v2" and controller in m.controllers]
        v1 = [m for m in mounts if m.version == "v1" and controller in m.controllers]
        if v2 and "" in own:
            chosen[controller] = ControllerMount(controller, "v2", _under(v2[0], own[""]))
        elif v1 and controller in own:
            chosen[controller] = ControllerMount(controller, "v1", _under(v1[0], own[controller]))
    return chosen


def probe_cgroups() -> CgroupHost:
    """Look at this host's cgroup mounts (the only place that reads /proc for that)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return CgroupHost({})
    return CgroupHost(resolve_mounts(mountinfo, proc_cgroup))


# --- the groups ----------------------------------------------------------------------


class CgroupHost:
    """Creates, fills, reads and removes the VM groups. Every method is idempotent.

    Methods raise :class:`HostError` naming the file when the kernel refuses a write.
    """

    def __init__(self, mounts: dict[str, ControllerMount]) -> None:
        self.mounts = mounts

    @property
    def missing(self) -> list[str]:
        return [c for c in CONTROLLERS if c not in self.mounts]

    def describe(self) -> str:
        found = ", ".join(f"{m.controller} (cgroup {m.version})" for m in self.mounts.values())
        return found or "no cgroup controllers (cpu, memory) available"

    def _distinct(self) -> list[ControllerMount]:
        seen: dict[Path, ControllerMount] = {}
        for mount in self.mounts.values():
            seen.setdefault(mount.parent, mount)
        return list(seen.values())

    def place(self, vm_id: str, pid: int) -> None:
        """Create the VM's groups (if needed) and move QEMU, all threads, into them."""
        for mount in self._distinct():
            group = self._ensure(mount, vm_id)
            if mount.version == "v1" and mount.controller == "memory":
                with contextlib.suppress(OSError):
                    (group / "memory.move_charge_at_immigrate").write_text("3")
            _write(group / "cgroup.procs", str(pid))

    def apply(self, vm_id: str, cpu: CpuControl | None, memory_bytes: int | None) -> None:
        """Write the CPU values and the memory bound into the VM's existing groups."""
        cpu_mount, mem_mount = self.mounts.get("cpu"), self.mounts.get("memory")
        if cpu_mount is not None and cpu is not None:
            _write_cpu(cpu_mount, cpu_mount.group(vm_id), cpu)
        if mem_mount is not None and memory_bytes is not None:
            name = "memory.max" if mem_mount.version == "v2" else "memory.limit_in_bytes"
            _write(mem_mount.group(vm_id) / name, str(memory_bytes))

    def weigh_parent(self, own_vm_ids: set[str], own_processors: int) -> None:
        """Give the ``viridian`` group the weight its VMs' virtual processors would have as
        plain processes (1024 shares | weight 100 each), so that putting VMs in a group does
        not shrink their share against the host's other processes. Groups of VMs another
        service placed there count as one processor each. The service's own group
        (:meth:`shelter_service`) gets the same weight."""
        mount = self.mounts.get("cpu")
        if mount is None:
            return
        foreign = [d for d in mount.parent.iterdir()
                   if d.is_dir() and d.name not in own_vm_ids] if mount.parent.is_dir() else []
        processors = max(1, own_processors + len(foreign))
        weight = _weight(mount, processors)
        for group in (mount.parent, mount.parent.parent / SERVICE_LEAF):
            if group.is_dir():
                _write(group / _weight_file(mount), weight)

    def shelter_service(self, pid: int) -> Path | None:
        """Move the service (``pid``, with all its threads; what it starts later starts
        there too) into ``<base>/viridian-service`` of the cpu controller, weighing as much
        as the ``viridian`` group (once :meth:`weigh_parent` ran, which keeps the two
        equal): a management plane among busy guests gets CPU when it asks, instead of
        one plain process's share against all their virtual processors (twenty TCG
        guests on two cores left the service's event loop waiting up to 22 s at a time).
        Idle, it costs the guests nothing. QEMU leaves it for its VM's group at once;
        storage daemons stay (they are the VMs' data path). The group, or None without a
        cpu controller.

        :raises HostError: the kernel refused the group or the move.
        """
        mount = self.mounts.get("cpu")
        if mount is None:
            return None
        leaf = mount.parent.parent / SERVICE_LEAF
        try:
            leaf.mkdir(exist_ok=True)
        except OSError as err:
            raise HostError(f"cannot create cgroup {leaf}: {err}") from err
        _write(leaf / "cgroup.procs", str(pid))
        if mount.version == "v2":  # weights apply once the base hands cpu to children
            with contextlib.suppress(OSError):
                _enable(mount.parent.parent, ["cpu"])
        return leaf

    def remove(self, vm_id: str) -> bool:
        """Remove the VM's groups (QEMU must have ended). False while a group still holds
        processes (e.g. an exited QEMU its parent has not reaped yet): try again later."""
        done = True
        for mount in self._distinct():
            try:
                mount.group(vm_id).rmdir()
            except FileNotFoundError:
                pass
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise HostError(f"cannot remove cgroup {mount.group(vm_id)}: {err}") from err
                done = False
            with contextlib.suppress(OSError):
                mount.parent.rmdir()  # only succeeds when no other VM group is left
        return done

    def read(self, vm_id: str) -> GroupState | None:
        """The values in force, or None when the VM has no group."""
        cpu_mount, mem_mount = self.mounts.get("cpu"), self.mounts.get("memory")
        paths = {c: str(m.group(vm_id)) for c, m in self.mounts.items()
                 if m.group(vm_id).is_dir()}
        if not paths:
            return None
        quota = period = shares = weight = memory = None
        if cpu_mount is not None and "cpu" in paths:
            quota, period, shares, weight = _read_cpu(cpu_mount, cpu_mount.group(vm_id))
        if mem_mount is not None and "memory" in paths:
            name = "memory.max" if mem_mount.version == "v2" else "memory.limit_in_bytes"
            memory = _read_int(mem_mount.group(vm_id) / name)
        pids = _read_pids(next(iter(self.mounts.values())).group(vm_id))
        return GroupState(paths, quota, period, shares, weight, memory, pids)

    def _ensure(self, mount: ControllerMount, vm_id: str) -> Path:
        group = mount.group(vm_id)
        for _ in range(5):  # another service may remove the empty parent meanwhile
            try:
                mount.parent.mkdir(parents=True, exist_ok=True)
                if mount.version == "v2":
                    self._delegate_v2(mount)
                group.mkdir(exist_ok=True)
                return group
            except FileNotFoundError:
                continue
            except OSError as err:
                raise HostError(f"cannot create cgroup {group}: {err}") from err
        raise HostError(f"cannot create cgroup {group}: its parent keeps disappearing")

    def _delegate_v2(self, mount: ControllerMount) -> None:
        """Enable our controllers in ``subtree_control`` of the base and of ``viridian``."""
        wanted = [c for c, m in self.mounts.items() if m.version == "v2"]
        base = mount.parent.parent
        try:
            _enable(base, wanted)
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            leaf = base / SERVICE_LEAF
            leaf.mkdir(exist_ok=True)
            for pid in _read_pids(base):
                with contextlib.suppress(OSError):
                    (leaf / "cgroup.procs").write_text(str(pid))
            _enable(base, wanted)
        _enable(mount.parent, wanted)


def _enable(group: Path, controllers: Iterable[str]) -> None:
    have = set((group / "cgroup.subtree_control").read_text().split())
    missing = [c for c in controllers if c not in have]
    if missing:
        (group / "cgroup.subtree_control").write_text(" ".join("+" + c for c in missing))


def _weight_file(mount: ControllerMount) -> str:
    return "cpu.weight" if mount.version == "v2" else "cpu.shares"


def _weight(mount: ControllerMount, processors: int) -> str:
    """The weight of ``processors`` plain processes: 100 each | 1024 shares each."""
    if mount.version == "v2":
        return str(min(10_000, 100 * processors))
    return str(min(262_144, 1024 * processors))


def _write_cpu(mount: ControllerMount, group: Path, cpu: CpuControl) -> None:
    if mount.version == "v2":
        _write(group / "cpu.max", f"{cpu.quota_us or 'max'} {cpu.period_us}")
        _write(group / "cpu.weight", str(cpu.weight_v2))
        return
    _write(group / "cpu.cfs_period_us", str(cpu.period_us))
    _write(group / "cpu.cfs_quota_us", str(cpu.quota_us if cpu.quota_us else -1))
    _write(group / "cpu.shares", str(cpu.shares_v1))


def _read_cpu(
    mount: ControllerMount, group: Path
) -> tuple[int | None, int | None, int | None, int | None]:
    if mount.version == "v2":
        quota, _, period = (_read_text(group / "cpu.max") or "max 100000").partition(" ")
        return (None if quota == "max" else int(quota), int(period), None,
                _read_int(group / "cpu.weight"))
    quota_value = _read_int(group / "cpu.cfs_quota_us")
    quota_us = None if quota_value is None or quota_value < 0 else quota_value
    return quota_us, _read_int(group / "cpu.cfs_period_us"), _read_int(group / "cpu.shares"), None


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as err:
        raise HostError(f"cannot write {value!r} to {path}: {err.strerror or err}",
                        path=str(path), value=value) from err


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None or text == "max":
        return None
    return int(text)


def _read_pids(group: Path) -> list[int]:
    return [int(p) for p in (_read_text(group / "cgroup.procs") or "").split()]
