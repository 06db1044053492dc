"""Gathering the best-practices analyzer's snapshot (:class:`viridian.bpa.Facts`): the I/O
half of ``viridian bpa``; the rules themselves are pure (:mod:`viridian.bpa.rules`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.bpa import CounterFact, DiskFact, Facts, HostFact, ProcessFact, VMFact
from viridian.counters import paths as P
from viridian.counters.procfs import parse_process_stat
from viridian.host.resources import read_resources
from viridian.model.slots import DriveSlot, hard_disks
from viridian.network.host import has_net_admin
from viridian.network.model import SwitchType
from viridian.service.checkpoints.store import CheckpointStore

if TYPE_CHECKING:
    from viridian.service.context import ServiceContext
    from viridian.service.counters.sampler import CounterService
    from viridian.service.switches.service import SwitchStore
    from viridian.service.vms.live import LiveVM

WINDOW_S = 600.0
"""How far back "sustained" looks in the counter history."""
PROCESS_SAMPLE_S = 0.5
TEST_TAG = "bpa:test"
QCOW2_MAGIC = b"QFI\xfb"


async def gather_facts(context: ServiceContext, switches: SwitchStore,
                       counters: CounterService) -> Facts:
    """The analyzer's snapshot of the host, its VMs, switches and counter history."""
    await counters.ensure_history()
    processes = await _other_processes(_own_pids(context))
    now = time.time()
    checkpoints = CheckpointStore(context.catalog)
    vms = tuple(_vm_fact(live, counters, now, checkpoints) for live in
                sorted(context.vms().values(), key=lambda lv: lv.record.name))
    return Facts(_host_fact(context, switches, processes), vms, _counter_fact(counters, now))


def _host_fact(context: ServiceContext, switches: SwitchStore,
               processes: tuple[ProcessFact, ...]) -> HostFact:
    res = read_resources()
    return HostFact(
        memory_mb=res.memory_mb, memory_available_mb=res.memory_available_mb,
        host_reserve_mb=context.policy.host_reserve_mb,
        logical_processors=res.logical_processors,
        virtual_processor_ratio=context.policy.virtual_processor_ratio,
        accelerator=context.host.accelerator, processes=processes,
        **_switch_facts(switches))


def _switch_facts(store: SwitchStore) -> dict[str, Any]:
    """Whether virtual switches work here, and which external ones share the management
    adapter (the seed's advice: keep a management adapter off the VMs)."""
    switches = store.load()
    return {"virtual_switches_supported": has_net_admin(),
            "management_switches": tuple(
                (s.name, s.adapter or "?") for s in switches
                if s.type is SwitchType.EXTERNAL and s.allow_management_os)}


def _counter_fact(counters: CounterService, now: float) -> CounterFact:
    h = counters.history

    def per_device(*names: str) -> dict[str, float]:
        total: dict[str, float] = {}
        for name in names:
            for counter_path, value in h.averages(f"\\{P.DISK}(*)\\{name}", WINDOW_S, now).items():
                device = P.parse(counter_path).instance or ""
                if device != P.TOTAL:
                    total[device] = total.get(device, 0.0) + value
        return total

    return CounterFact(
        window_s=min(WINDOW_S, len(h) * counters.interval_s), samples=len(h),
        disk_time_pct=per_device("% Disk Read Time", "% Disk Write Time"),
        queue_length=per_device("Avg. Disk Read Queue Length", "Avg. Disk Write Queue Length"))


def _vm_fact(live: LiveVM, counters: CounterService, now: float,
             checkpoints: CheckpointStore) -> VMFact:
    """The VM's facts; its disks as QEMU opens them (``disk_view``: a VM with checkpoints
    runs on their overlays, which its settings do not name)."""
    s = live.record.settings
    ops = counters.history.averages(
        f"\\{P.STORAGE}({live.record.name}:*)\\*Operations/Sec", WINDOW_S, now)
    return VMFact(
        name=live.record.name, running=live.holds_resources, memory_mb=live.memory_mb,
        processors=live.processors, production=TEST_TAG not in s.notes,
        disks=tuple(_disk_fact(d) for d in hard_disks(live.disk_view(s))),
        switches=tuple(a.switch for a in s.network_adapters),
        disk_iops=sum(ops.values()) if ops else None,
        checkpoints=len(checkpoints.tree(live.record.id).checkpoints))


def _disk_fact(disk: DriveSlot) -> DiskFact:
    path = str(disk.path)
    fmt = disk.format.value if disk.format else _detect(path)
    return DiskFact(path, fmt, disk_type(path, fmt), host_device(path))


def _detect(path: str) -> str:
    from viridian.disks import detect_format

    try:
        return str(detect_format(Path(path)))
    except Exception:  # unreadable: the rule reports it as unknown
        return "unknown"


def disk_type(path: str, fmt: str) -> str:
    """fixed, dynamic, differencing, raw or unknown (see :class:`viridian.bpa.DiskFact`)."""
    try:
        if fmt == "vpc":
            from viridian.disks import inspect

            return str(inspect(path).disk_type)
        if fmt == "qcow2":
            with open(path, "rb") as f:
                header = f.read(16)
            backing = int.from_bytes(header[8:16], "big")  # qcow2 spec: backing_file_offset
            return "differencing" if header[:4] == QCOW2_MAGIC and backing else "dynamic"
        if fmt == "raw":
            return "raw"
    except Exception:
        return "unknown"
    return "unknown"


def host_device(path: str) -> str | None:
    """The whole host block device holding ``path`` (``vda`` for a file on ``vda1``)."""
    try:
        dev = os.stat(path).st_dev
        sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve()
    except OSError:
        return None
    if not sys_dev.exists():
        return None
    return sys_dev.parent.name if (sys_dev / "partition").exists() else sys_dev.name


def _own_pids(context: ServiceContext) -> set[int]:
    pids = {os.getpid(), os.getppid()}
    pids |= {lv.worker.pid for lv in context.vms().values() if lv.worker is not None}
    return pids


def _process_table() -> dict[int, tuple[str, int, int]]:
    """pid → (name, CPU ns, rss kB) of every user-space process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text()
            cpu, rss = parse_process_stat(text)
            if rss > 0:  # kernel threads have no resident memory
                table[int(entry.name)] = (text[text.index("(") + 1:text.rindex(")")], cpu, rss)
    return table


async def _other_processes(exclude: set[int]) -> tuple[ProcessFact, ...]:
    before = _process_table()
    await asyncio.sleep(PROCESS_SAMPLE_S)
    after = _process_table()
    facts = []
    for pid, (name, cpu, rss) in after.items():
        if pid in exclude or pid not in before:
            continue
        pct = 100.0 * (cpu - before[pid][1]) / (PROCESS_SAMPLE_S * 1e9)
        facts.append(ProcessFact(pid, name, round(max(0.0, pct), 1), rss // 1024))
    return tuple(sorted(facts, key=lambda p: -p.cpu_pct))
