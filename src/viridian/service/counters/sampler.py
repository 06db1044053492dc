"""The service's counter sampler: background sampling, history, metering, on-demand samples.

The counters capability (:class:`CountersCapability`) starts it with the service and
stops it at close. Settings in ``<data>/host.json`` (optional)::

    {"counter_interval_s": 10,      # background sampling interval
     "counter_history_s": 3600}     # how much history to keep (at least one hour)

``$VIRIDIAN_COUNTER_INTERVAL_S`` overrides the interval (tests, benchmarks).

Metering (Measure-VM) accumulates on every background sample and is kept in the table
``counter_metering`` of the catalog's SQLite file (own connection), written every minute,
on reset and at close: a reset point survives service restarts.

Only VMs that hold a QEMU process are sampled in the background and only they get
counter instances; a meter is made when a VM first runs (or is reset) and meters from
the VM's definition: a VM that never ran measures zero since it was defined, and holds
nothing in memory (10,000 defined VMs, docs/architecture.md "Scale"). ``/metrics``
still samples every VM (``viridian_vm_up`` 0 for the stopped ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.counters import paths as P
from viridian.counters import procfs
from viridian.counters.collect import Collector, VMTarget, block_stat
from viridian.counters.formulas import compute
from viridian.counters.history import CounterSample, History
from viridian.counters.metering import Meter, accumulate, accumulate_disks, report
from viridian.counters.samples import Snapshot, VMSample
from viridian.errors import BadRequest, ViridianError
from viridian.model import VMSettings
from viridian.model.slots import drive_slots, hard_disks
from viridian.model.states import VMState
from viridian.qemu.render.naming import FLOPPY_ID, ide_id, scsi_disk_id
from viridian.service.capability import Capability, SettingsChange
from viridian.service.context import ServiceContext
from viridian.service.counters.routes import install_counter_routes
from viridian.service.switches.service import launched_adapters

if TYPE_CHECKING:
    from viridian.service.catalog import VMRecord
    from viridian.service.switches.service import SwitchStore
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 10.0
DEFAULT_HISTORY_S = 3600.0
MIN_HISTORY_S = 3600.0
METER_FLUSH_S = 60.0
MAX_SAMPLE_INTERVAL_S = 60.0


class CountersCapability(Capability):
    """Counters, ``/metrics``, metering and the analyzer: owns the service's sampler."""

    name = "counters"

    def __init__(self, context: ServiceContext, switches: SwitchStore) -> None:
        self.context = context
        self.switches = switches
        self._sampler: CounterService | None = None

    @property
    def sampler(self) -> CounterService:
        """The running sampler (started here when :meth:`start` has not run yet)."""
        if self._sampler is None:
            self._sampler = CounterService(self.context)
            self._sampler.start()
        return self._sampler

    def start(self) -> None:
        """Start background sampling."""
        _ = self.sampler

    async def close(self) -> None:
        """Stop sampling and write the meters."""
        if self._sampler is not None:
            await self._sampler.stop()
            self._sampler = None

    def install_routes(self, app: FastAPI) -> None:
        install_counter_routes(app, self)

    async def before_live_change(self, change: SettingsChange) -> None:
        """Meter the I/O of disks about to be hot removed (QEMU forgets it with them)."""
        if change.vm is not None and change.old is not None and self._sampler is not None:
            gone = _image_device_ids(change.old) - _image_device_ids(change.new)
            await self._sampler.settle_disks(change.vm, gone)


def _host_settings(data_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((data_dir / "host.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


class MeterStore:
    """Meters by VM id, persisted in the catalog file's ``counter_metering`` table."""

    def __init__(self, db_path: Path) -> None:
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS counter_metering "
                         "(vm_id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        rows = self._db.execute("SELECT vm_id, data FROM counter_metering").fetchall()
        self.meters = {vm_id: Meter.from_json(json.loads(data)) for vm_id, data in rows}

    def meter(self, vm_id: str, since: float) -> Meter:
        """``vm_id``'s meter, made (metering from ``since``) when it has none yet."""
        if vm_id not in self.meters:
            self.meters[vm_id] = Meter(reset_at=since)
        return self.meters[vm_id]

    def reset(self, vm_id: str) -> None:
        self.meters[vm_id] = Meter(reset_at=time.time())
        self.flush()

    def flush(self, keep: set[str] | None = None) -> None:
        """Write every meter (and forget VMs not in ``keep``, when given)."""
        if keep is not None:
            for gone in set(self.meters) - keep:
                del self.meters[gone]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if keep is not None:
                self._db.execute("DELETE FROM counter_metering")
            self._db.executemany("INSERT OR REPLACE INTO counter_metering VALUES (?,?)",
                                 [(k, json.dumps(m.to_json())) for k, m in self.meters.items()])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


class CounterService:
    """Samples every VM and the host; keeps the history and the meters."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        settings = _host_settings(context.data_dir)
        interval = os.environ.get("VIRIDIAN_COUNTER_INTERVAL_S",
                                  settings.get("counter_interval_s", DEFAULT_INTERVAL_S))
        self.interval_s = max(0.1, float(interval))
        history_s = max(MIN_HISTORY_S, float(settings.get("counter_history_s",
                                                          DEFAULT_HISTORY_S)))
        self.history = History(math.ceil(history_s / self.interval_s))
        self.collector = Collector()
        self.meters = MeterStore(context.data_dir / "catalog.sqlite")
        self.host_mhz = procfs.cpu_mhz()
        self.last: Snapshot | None = None
        self.sampling_cpu_s = 0.0
        self.ticks = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._flushed_at = time.monotonic()
        self._settled: dict[str, set[str]] = {}
        """Disks metered at removal since the last sample, by VM id."""

    # --- background -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="counters")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.meters.flush()
        self.meters.close()

    async def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            try:
                await self.tick()
            except Exception:  # a failed sample must not end sampling
                log.exception("counter sampling failed")
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.interval_s)

    async def tick(self) -> None:
        """Take one sample: history, metering, periodic meter flush."""
        async with self._lock:
            cpu_before = time.process_time()
            snap = await self.snapshot()
            prev, self.last = self.last, snap
            if prev is not None:
                seconds = snap.host.time - prev.host.time
                self.history.append(CounterSample(snap.wall_time, seconds, compute(prev, snap)))
                self._meter(prev, snap, seconds)
            if time.monotonic() - self._flushed_at >= METER_FLUSH_S:
                self.meters.flush(keep=set(self.context.vms()))
                self._flushed_at = time.monotonic()
            self.sampling_cpu_s += time.process_time() - cpu_before
            self.ticks += 1

    def _meter(self, prev: Snapshot, snap: Snapshot, seconds: float) -> None:
        """Meter the running VMs of ``snap``; one missing from ``prev`` was not running
        then (only running VMs are sampled), so its process counts from zero."""
        before = {vm.vm_id: vm for vm in prev.vms}
        settled, self._settled = self._settled, {}
        for vm in snap.vms:
            if not vm.running:
                continue
            old = before.get(vm.vm_id) or VMSample(vm.vm_id, vm.name, vm.processors,
                                                   vm.memory_mb, None)
            if vm.vm_id in settled:  # metered at removal: a disk back at that slot starts at 0
                old = replace(old, disks={d: b for d, b in old.disks.items()
                                          if d not in settled[vm.vm_id]})
            accumulate(self._meter_of(vm.vm_id), old, vm, seconds)

    def _meter_of(self, vm_id: str) -> Meter:
        live = self.context.vms().get(vm_id)
        since = defined_at(live.record) if live is not None else time.time()
        return self.meters.meter(vm_id, since)

    async def settle_disks(self, live: LiveVM, device_ids: frozenset[str]) -> None:
        """Add to ``live``'s meter the I/O of the disks ``device_ids`` since the last
        sample: they are about to be hot removed and QEMU forgets their counters with
        them. Nothing is added before the first sample (no baseline, as in
        :func:`~viridian.counters.metering.accumulate`)."""
        worker = live.worker
        if worker is None or not device_ids:
            return
        async with self._lock:
            if self.last is None:
                return
            try:
                raw = await worker.monitor.block_stats()
            except ViridianError as err:
                log.warning("cannot meter the disks leaving VM %s: %s", live.record.name, err)
                return
            prev = next((vm for vm in self.last.vms if vm.vm_id == live.record.id), None)
            old = prev.disks if prev is not None and prev.pid == worker.pid else {}
            cur = {dev: block_stat(raw[dev]) for dev in device_ids if dev in raw}
            accumulate_disks(self._meter_of(live.record.id), old, cur)
            self._settled.setdefault(live.record.id, set()).update(cur)

    # --- sampling ---------------------------------------------------------------------

    def targets(self, every_vm: bool = False) -> list[VMTarget]:
        """The VMs holding a QEMU process (``every_vm``: the stopped ones too)."""
        return [_target(live) for live in self.context.vms().values()
                if every_vm or live.worker is not None]

    async def snapshot(self, every_vm: bool = False) -> Snapshot:
        return await self.collector.snapshot(self.targets(every_vm))

    async def sample(self, queries: list[str], vm: str | None,
                     interval_s: float) -> CounterSample:
        """Counter values over ``interval_s`` seconds from now (Get-Counter's one sample)."""
        if not 0 < interval_s <= MAX_SAMPLE_INTERVAL_S:
            raise BadRequest(f"sample interval {interval_s} s is out of range; allowed: "
                             f"more than 0 and at most {MAX_SAMPLE_INTERVAL_S:g} s",
                             interval_s=interval_s)
        first = await self.snapshot()
        await asyncio.sleep(interval_s)
        second = await self.snapshot()
        values = compute(first, second)
        chosen = select(values, queries, self.vm_name(vm))
        return CounterSample(second.wall_time, second.host.time - first.host.time,
                             {k: values[k] for k in chosen})

    async def list_paths(self, vm: str | None = None) -> list[str]:
        """Every counter path available now (from the last sample, or a short new one)."""
        if self.last is not None:
            values = compute(self.last, await self.snapshot())
        else:
            first = await self.snapshot()
            await asyncio.sleep(0.2)
            values = compute(first, await self.snapshot())
        return select(values, [], self.vm_name(vm))

    def vm_name(self, ref: str | None) -> str | None:
        return None if ref is None else self.context.catalog.find_vm(ref).name

    async def ensure_history(self) -> None:
        """At least one history sample (for the analyzer right after a start)."""
        if not len(self.history):
            await self.tick()
            if not len(self.history):
                await asyncio.sleep(1.0)
                await self.tick()

    # --- metering ---------------------------------------------------------------------

    def measure(self, ref: str) -> dict[str, Any]:
        record = self.context.catalog.find_vm(ref)
        meter = self.meters.meters.get(record.id) or Meter(reset_at=defined_at(record))
        result = {"vm": record.name, "vm_id": record.id, "host_cpu_mhz": self.host_mhz,
                  **report(meter, self.host_mhz, time.time())}
        result["disk_allocated_bytes"] = sum(_allocated(slot.path or "")
                                             for slot in hard_disks(record.settings))
        result["reset_at_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meter.reset_at))
        return result

    def reset_meter(self, ref: str) -> dict[str, Any]:
        """Measure, then start metering again from now; returns the measurement."""
        result = self.measure(ref)
        self.meters.reset(result["vm_id"])
        return result

    def stats(self) -> dict[str, Any]:
        return {"interval_s": self.interval_s, "capacity": self.history.capacity,
                "kept": len(self.history), "ticks": self.ticks,
                "sampling_cpu_s": round(self.sampling_cpu_s, 6)}


def select(values: dict[str, float], queries: list[str], vm: str | None) -> list[str]:
    """Paths of ``values`` chosen by ``queries`` (all when empty), limited to ``vm``'s
    instances (``vm:…`` or ``vm``) when given."""
    names = sorted(values)
    if vm is not None:
        names = [n for n in names if _belongs(n, vm)]
    return P.select(queries, names)


def _belongs(counter_path: str, vm: str) -> bool:
    instance = P.parse(counter_path).instance
    return instance is not None and (instance == vm or instance.startswith(vm + ":"))


def _target(live: LiveVM) -> VMTarget:
    worker = live.worker
    macs = {f"nic{i}": a.mac.lower() for i, a in enumerate(launched_adapters(live))
            if a.mac and a.switch}
    return VMTarget(
        vm_id=live.record.id, name=live.record.name, processors=live.processors,
        memory_mb=live.memory_mb, pid=worker.pid if worker is not None else None,
        monitor=worker.monitor if worker is not None else None,
        agent=worker.guest_agent if worker is not None else None, nic_macs=macs,
        guest_running=live.state is VMState.RUNNING,
        disk_ids=_devices_with_images(live.record.settings))


def _devices_with_images(settings: VMSettings) -> frozenset[str]:
    """Ids of the drives that hold an image now (current settings: media changes and hot
    plug included); an empty DVD or floppy drive is no virtual storage device."""
    ids = set(_image_device_ids(settings))
    if settings.floppy.path:
        ids.add(FLOPPY_ID)
    return frozenset(ids)


def _image_device_ids(settings: VMSettings) -> frozenset[str]:
    """QEMU device ids of the IDE and SCSI drives holding an image."""
    return frozenset(
        ide_id(slot.controller, slot.location) if slot.bus == "ide"
        else scsi_disk_id(slot.controller, slot.location)
        for slot in drive_slots(settings) if slot.path)


def defined_at(record: VMRecord) -> float:
    """When ``record`` was defined (Unix seconds): where a VM's first meter starts."""
    try:
        return datetime.fromisoformat(record.created_at).timestamp()
    except ValueError:
        return time.time()


def _allocated(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0
