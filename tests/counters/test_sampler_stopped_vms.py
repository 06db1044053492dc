"""Stopped VMs in the counter sampler (issue 13, "Scale"): no counter instances, no
samples, no meters in memory; ``vm measure`` of a stopped VM still answers (zero since
its definition, stable), ``/metrics`` still lists it as down, and a VM that starts
between two samples is metered from its process's start.

An in-process service core on a real SQLite catalog; no guest is started (the guest
tests in test_counters_guests.py meter running VMs end to end).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path

from viridian.counters.prometheus import exposition
from viridian.counters.samples import Snapshot, VMSample
from viridian.qemu.capabilities import HostCapabilities
from viridian.service.core import ServiceCore

S = 10**9
NAMES = ("off-a", "off-b", "off-c")


async def _scenario(data: Path) -> None:
    core = ServiceCore(data, HostCapabilities())
    await core.start()
    try:
        for name in NAMES:
            await core.create_vm(name, {}, memory_mb=128, processors=None, dvd=None, vhd=None)
        sampler = core.counters.sampler
        for _ in range(3):
            await sampler.tick()
        latest = sampler.history.latest()
        assert latest is not None and r"\Memory\Available MBytes" in latest.values
        assert not [k for k in latest.values if "off-" in k], sorted(latest.values)
        assert not [p for p in await sampler.list_paths() if "off-" in p]
        assert sampler.last is not None and sampler.last.vms == ()  # only running VMs
        assert sampler.meters.meters == {}  # nothing kept for VMs that never ran

        first = sampler.measure("off-b")
        defined = datetime.fromisoformat(core.find_live("off-b").record.created_at)
        assert first["reset_at"] == defined.timestamp()
        assert (first["running_s"], first["cpu_seconds"], first["avg_memory_mb"]) == (
            0.0, 0.0, None)
        assert sampler.measure("off-b")["reset_at"] == first["reset_at"]  # stable
        reset = sampler.reset_meter("off-b")
        assert reset["vm"] == "off-b" and sampler.measure("off-b")["reset_at"] > 0

        metrics = exposition(await sampler.snapshot(every_vm=True))
        for name in NAMES:
            assert f'viridian_vm_up{{vm="{name}"}} 0' in metrics, metrics

        # 'off-c' starts between two samples: its process counts from zero
        vm_id = core.find_live("off-c").record.id
        host = sampler.last.host
        running = VMSample(vm_id, "off-c", 2, 128, os.getpid(), (3 * S, 1 * S))
        sampler._meter(Snapshot(0, host, ()), Snapshot(10, host, (running,)), 10.0)
        measured = sampler.measure("off-c")
        assert (measured["cpu_seconds"], measured["running_s"]) == (4.0, 10.0), measured
        assert measured["reset_at"] == datetime.fromisoformat(
            core.find_live("off-c").record.created_at).timestamp()
    finally:
        await core.close()


def test_stopped_vms_have_no_counters_and_measure_zero_since_defined(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))
